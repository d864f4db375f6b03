package robustness

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestRestoreUnderLoad proves that `zdps backup` of a server under
// registration load is a consistent snapshot: restored with `zdps restore`
// into a new data directory and served with the original's KEK, the store
// checks clean and holds every registration acknowledged before the backup
// request began, with the CA that issued their certificates.
func TestRestoreUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two real servers under registration load")
	}
	kek := restoreWriteKEK(t)
	orig := zdpstest.Start(t, "--kek-file", kek)
	ctx := t.Context()
	groupKey := restoreSetup(t, orig.Client())
	load := zdpstest.StartLoad(t, orig, zdpstest.LoadConfig{Group: "fleet", GroupKey: groupKey, Prefix: "fleet"})
	load.WaitAcked(300, 2*time.Minute)

	before := load.Acked() // acknowledged before the backup request began
	file := filepath.Join(t.TempDir(), "zdps-backup.db")
	start := time.Now()
	out := restoreCLI(t, "--data-dir", orig.DataDir, "backup", file)
	took := time.Since(start)
	if !strings.Contains(out, "consistency check clean") {
		t.Fatalf("backup output:\n%s", out)
	}
	during := len(load.Acked()) - len(before)
	load.WaitAcked(len(before)+during+50, time.Minute) // the load went on after the backup
	acked, failed := load.Stop()
	origCA, err := orig.Client().GetCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orig.Stop()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup of %d bytes in %s with %d registrations acknowledged before it, %d while it ran; %d acknowledged, %d failed in all",
		fi.Size(), took.Round(time.Millisecond), len(before), during, acked, failed)

	// restore refuses a data directory in use, then fills a new one.
	if out, err := restoreCLIErr(t, "--data-dir", orig.DataDir, "restore", file); err == nil || !strings.Contains(out, "is not empty") {
		t.Fatalf("restore into the original's data directory: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	out = restoreCLI(t, "--data-dir", dir, "restore", file)
	for _, want := range []string{"consistency check clean", "--kek-file", "connection string"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore output lacks %q:\n%s", want, out)
		}
	}

	restored := zdpstest.StartIn(t, dir, "--kek-file", kek)
	c := restored.Client()
	gotCA, err := c.GetCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gotCA.Intermediate.SHA256Thumbprint != origCA.Intermediate.SHA256Thumbprint || gotCA.Root.SHA256Thumbprint != origCA.Root.SHA256Thumbprint {
		t.Fatalf("restored CA %+v, original %+v", gotCA, origCA)
	}
	roots := restoreIssuerPool(t, c)
	for _, a := range before {
		rec, err := c.GetRegistration(ctx, a.RegistrationID)
		if err != nil {
			t.Fatalf("%s, acknowledged before the backup: %v", a.RegistrationID, err)
		}
		if rec.Status != "assigned" || rec.DeviceID != a.DeviceID || rec.AssignedHub != a.AssignedHub {
			t.Fatalf("%s restored as %+v, the device was told %+v", a.RegistrationID, rec, a)
		}
		if _, err := a.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("%s's certificate does not chain to the restored CA: %v", a.RegistrationID, err)
		}
	}
	// The CA key decrypts with the KEK: the restored server issues.
	res, err := device.Register(ctx, device.Config{
		Endpoint: restored.Addr(), IDScope: restored.IDScope(), RegistrationID: "after-restore",
		GroupKey: groupKey, GenerateKey: true, RootCAs: restored.RootCAs(), MaxWait: time.Minute,
	})
	if err != nil || len(res.IssuedCertificateChain) == 0 {
		t.Fatalf("registration on the restored server: %+v, %v", res, err)
	}
	restored.Stop()
	info, err := bolt.Inspect(filepath.Join(dir, "zdps.db"), time.Second)
	if err != nil {
		t.Fatalf("restored store after serving: %v", err)
	}
	t.Logf("restored store checks clean: %d bytes, %d registrations", info.Size, info.Keys["registrations"])

	// Without the original's KEK the restored store does not serve: the CA
	// key is not in the backup in a usable form.
	other := restoreWriteKEK(t)
	ctx2, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	wrong, err := exec.CommandContext(ctx2, zdpstest.Binary(t), "serve", "--mqtt-listen", "off", "--data-dir", dir, "--listen", "127.0.0.1:0", "--kek-file", other).CombinedOutput()
	if err == nil || !strings.Contains(string(wrong), "key-encryption key") {
		t.Fatalf("zdps serve on the restored store with another KEK: %v\n%s", err, wrong)
	}
}

// TestCompactAfterChurn: a store compacted with `zdps compact`
// (server stopped) serves again with everything it held, and shrank.
func TestCompactAfterChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real server")
	}
	srv := zdpstest.Start(t)
	c := srv.Client()
	ctx := t.Context()
	// Churn: a thousand enrollments, nine in ten deleted.
	for i := range 1000 {
		id := "churn-" + strings.Repeat("x", 100) + "-" + hex.EncodeToString([]byte{byte(i >> 8), byte(i)})
		if _, err := c.PutEnrollment(ctx, restoreEnrollment(id), ""); err != nil {
			t.Fatal(err)
		}
		if i%10 != 0 {
			if err := c.DeleteEnrollment(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A running server holds the file: compact refuses, plainly.
	if out, err := restoreCLIErr(t, "--data-dir", srv.DataDir, "compact"); err == nil || !strings.Contains(out, "is zdps serve running?") {
		t.Fatalf("compact under a running server: %v\n%s", err, out)
	}
	srv.Stop()
	out := restoreCLI(t, "--data-dir", srv.DataDir, "compact")
	t.Logf("zdps compact: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "smaller") || !strings.Contains(out, "zdps.db.bak") {
		t.Fatalf("compact output:\n%s", out)
	}
	srv.Restart()
	n := 0
	for e, err := range srv.Client().Enrollments(ctx, 100) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.RegistrationID, "churn-") {
			t.Fatalf("unexpected enrollment %s", e.RegistrationID)
		}
		n++
	}
	if n != 100 {
		t.Fatalf("%d enrollments after compaction, want 100", n)
	}
}

// TestBackupOnPostgres: a server on PostgreSQL has no file to snapshot;
// `zdps backup` says to use pg_dump, the server answers 4xx and logs no
// ERROR, and no file is left behind.
func TestBackupOnPostgres(t *testing.T) {
	url, schema := pgtest.Schema(t)
	srv := zdpstest.Start(t, "--store", pgtest.StoreURL(url, schema))
	file := filepath.Join(t.TempDir(), "zdps-backup.db")
	out, err := restoreCLIErr(t, "--data-dir", srv.DataDir, "backup", file)
	if err == nil || !strings.Contains(out, "pg_dump --schema=zdps") || !strings.Contains(out, "pg_restore") {
		t.Fatalf("zdps backup on PostgreSQL: %v\n%s", err, out)
	}
	if !srv.LogContains(`"status":400`) || strings.Contains(srv.Logs(), `"level":"ERROR"`) {
		t.Fatalf("server log:\n%s", srv.Logs())
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 0 {
		t.Fatalf("files left behind: %v", entries)
	}
}

func restoreEnrollment(id string) *enrollment.IndividualEnrollment {
	return &enrollment.IndividualEnrollment{
		RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}
}

// restoreSetup creates a hub and the symmetric-key group "fleet" and
// returns the group's primary key.
func restoreSetup(t *testing.T, c *client.Client) []byte {
	t.Helper()
	ctx := t.Context()
	if _, err := c.PutHub(ctx, &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "fleet", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.GroupKeys(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	k, err := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// restoreIssuerPool is the CA bundle the server issues device
// certificates from (intermediate and root), as trust anchors.
func restoreIssuerPool(t *testing.T, c *client.Client) *x509.CertPool {
	t.Helper()
	pem, err := c.CABundle(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("empty CA bundle")
	}
	return pool
}

func restoreWriteKEK(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// restoreCLI runs the real zdps binary and fails the test on a non-zero
// exit.
func restoreCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := restoreCLIErr(t, args...)
	if err != nil {
		t.Fatalf("zdps %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func restoreCLIErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, zdpstest.Binary(t), args...).CombinedOutput()
	return string(out), err
}
