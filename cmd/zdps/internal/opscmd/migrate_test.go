package opscmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil/cmdtest"
	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// runZdps runs `zdps migrate ...` in-process.
var runZdps = cmdtest.Runner(NewMigrateCmd)

func TestMigrateArguments(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string // in the one-line error
	}{
		{"no flags", []string{"migrate"}, "both --from and --to"},
		{"no destination", []string{"migrate", "--from", "bolt:" + dir}, "both --from and --to"},
		{"unknown form", []string{"migrate", "--from", "mysql://x", "--to", "bolt:" + dir}, "--from:"},
		{"same store", []string{"migrate", "--from", "bolt:" + dir, "--to", "bolt:" + filepath.Join(dir, "zdps.db")}, "same store"},
		{"missing source file", []string{"migrate", "--from", "bolt:" + filepath.Join(dir, "nope.db"), "--to", "bolt:" + filepath.Join(dir, "x.db")}, "source bolt:"},
		{"empty source", []string{"migrate", "--from", "bolt:" + emptyBolt(t), "--to", "bolt:" + filepath.Join(dir, "y.db")}, "is empty"},
		{"bad batch size", []string{"migrate", "--from", "bolt:a", "--to", "bolt:b", "--batch-size", "0"}, "--batch-size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runZdps(t, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want a failure mentioning %q on one line", code, stderr, tc.want)
			}
		})
	}
}

// A real instance on bbolt moves to PostgreSQL and back; a zdps serve on
// the PostgreSQL copy (given the original KEK) is the same instance: same
// ID scope, same CA, same documents with the same ETags.
func TestMigrateServedInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("runs zdps serve")
	}
	url, schema := pgtest.Schema(t)
	pgURL := pgtest.StoreURL(url, schema)
	ctx := t.Context()

	old := zdpstest.Start(t)
	scope := old.IDScope()
	var etags []string
	for _, id := range []string{"dev-a", "dev-b", "dev-c"} {
		e, err := old.Client().PutEnrollment(ctx, &enrollment.IndividualEnrollment{
			RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}},
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		etags = append(etags, e.ETag)
	}
	bundle := old.CAFile()
	old.Stop()

	code, stdout, stderr := runZdps(t, "migrate", "--from", "bolt:"+old.DataDir, "--to", pgURL)
	if code != 0 {
		t.Fatalf("migrate to PostgreSQL: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"enrollments", "ca ", "settings", "ok", "copied "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "MISMATCH") {
		t.Errorf("report shows a mismatch:\n%s", stdout)
	}
	// Into a non-empty store: refused, nothing changed.
	code, _, stderr = runZdps(t, "migrate", "--from", "bolt:"+old.DataDir, "--to", pgURL)
	if code == 0 || !strings.Contains(stderr, "not empty") {
		t.Fatalf("second migrate: exit %d, %q; want a refusal of the non-empty destination", code, stderr)
	}

	srv := zdpstest.Start(t, "--store", pgURL, "--kek-file", filepath.Join(old.DataDir, "kek"))
	if got := srv.IDScope(); got != scope {
		t.Errorf("ID scope %s after migration, was %s", got, scope)
	}
	if a, b := readFile(t, bundle), readFile(t, srv.CAFile()); a != b {
		t.Error("CA bundle changed by the migration")
	}
	for i, id := range []string{"dev-a", "dev-b", "dev-c"} {
		e, err := srv.Client().GetEnrollment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if e.ETag != etags[i] {
			t.Errorf("%s: ETag %s, was %s", id, e.ETag, etags[i])
		}
	}
	srv.Stop()

	// And back to a fresh bbolt file, with the JSON report.
	back := filepath.Join(t.TempDir(), "zdps.db")
	code, stdout, stderr = runZdps(t, "migrate", "--from", pgURL, "--to", "bolt:"+back, "-o", "json")
	if code != 0 {
		t.Fatalf("migrate back: exit %d\n%s%s", code, stdout, stderr)
	}
	var rep struct {
		Copied  int `json:"copied"`
		Buckets []struct {
			Bucket      string `json:"bucket"`
			SourceKeys  int    `json:"sourceKeys"`
			DestKeys    int    `json:"destinationKeys"`
			SameContent bool   `json:"sameContent"`
		} `json:"buckets"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	sum := 0
	for _, b := range rep.Buckets {
		if b.SourceKeys != b.DestKeys || !b.SameContent {
			t.Errorf("bucket %s: %+v", b.Bucket, b)
		}
		sum += b.DestKeys
	}
	if rep.Copied == 0 || sum != rep.Copied {
		t.Errorf("copied %d, buckets add up to %d", rep.Copied, sum)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// emptyBolt is a bbolt file with nothing in it.
func emptyBolt(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "empty.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return path
}
