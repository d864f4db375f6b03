package kms

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zdps/zdps/internal/zdpstest"
)

// TestCLIRefusals: the CA commands refuse what they cannot do with a
// plain message and leave nothing half done.
func TestCLIRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs zdps")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"offline root inside the data directory", []string{"ca", "init", "--data-dir", dataDir, "--offline-root", filepath.Join(dataDir, "root.key")}, "inside the data directory"},
		{"a KMS this binary lacks", []string{"ca", "init", "--data-dir", dataDir, "--kms", "yubikey:serial=1"}, "not built into this zdps"},
		{"a URI that is no KMS URI", []string{"ca", "init", "--data-dir", dataDir, "--kms", "/dev/tpmrm0"}, "has no scheme"},
		{"rotation without a store", []string{"ca", "rotate", "--store", "bolt:" + filepath.Join(t.TempDir(), "none.db")}, "no such file"},
		{"sign-intermediate without its files", []string{"ca", "sign-intermediate", "--csr", "x.csr"}, "are required"},
		{"both offline rotation steps at once", []string{"ca", "rotate", "--data-dir", dataDir, "--csr-out", "a", "--intermediate-cert", "b"}, "two steps"},
		{"a root rotation with an offline step", []string{"ca", "rotate", "--root", "--csr-out", "a"}, "makes its own intermediate"},
		{"an offline root without --root", []string{"ca", "rotate", "--offline-root", "/tmp/x.key"}, "goes with --root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := zdps(t, tc.args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("zdps %v: %v\n%s", tc.args, err, out)
			}
		})
	}
	// A refused init created no CA (nor any file of one).
	if _, err := os.Stat(filepath.Join(dataDir, "zdps.db")); err == nil {
		t.Fatal("a refused zdps ca init left a store behind")
	}

	// On the embedded store a running server holds the file: the rotation
	// says so instead of waiting.
	srv := zdpstest.Start(t)
	if out, err := zdps(t, "ca", "rotate", "--data-dir", srv.DataDir); err == nil || !strings.Contains(out, "running zdps serve") {
		t.Fatalf("rotate beside a running server: %v\n%s", err, out)
	}
}
