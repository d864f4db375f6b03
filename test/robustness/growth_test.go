package robustness

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// growthExtraArgs are added to `zdps serve` by TestGrowthReregistration:
// a per-device register throttle would refuse most of a tight loop, and
// this test is about what the registrations that are accepted store.
var growthExtraArgs = []string{"--throttle-register", "off"}

const (
	growthRegistrations = 300
	growthPayloadBytes  = 64 << 10
	growthMaxFileGrowth = 20 << 20
	// growthMaxRecord bounds the stored record beyond its payload (the
	// record keeps the last payload, as DPS answers it to a status lookup).
	growthMaxRecord = 16 << 10
)

// TestGrowthReregistration proves that one device key re-registering in a
// loop cannot grow the store without bound: 300 registrations, each with a
// new CSR and a 64 KB payload, against a real bbolt-backed `zdps serve`,
// grow zdps.db by less than 20 MB; the registration record stays under
// 16 KB (beyond its payload), the device keeps one operation, and the
// certificates of every registration stay stored (they are unexpired).
func TestGrowthReregistration(t *testing.T) {
	srv := zdpstest.Start(t, growthExtraArgs...)
	ctx := t.Context()
	cl := srv.Client()
	if _, err := cl.PutHub(ctx, &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	const regID = "growth-dev"
	key := srv.SymmetricKeyEnrollment(regID)
	payload := growthPayload(t)
	register := func() *device.Result {
		t.Helper()
		res, err := device.Register(ctx, device.Config{
			Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: regID, SymmetricKey: key,
			GenerateKey: true, Payload: payload, RootCAs: srv.RootCAs(), MaxWait: time.Minute,
		})
		if err != nil {
			t.Fatalf("register: %v\n%s", err, growthTail(srv.Logs()))
		}
		return res
	}

	// The first registration creates the record; what follows only
	// replaces it.
	register()
	dbPath := filepath.Join(srv.DataDir, "zdps.db")
	before := growthFileSize(t, dbPath)
	var last *device.Result
	for range growthRegistrations {
		last = register()
	}
	after := growthFileSize(t, dbPath)

	// The service API's form of the record.
	rec, err := cl.GetRegistration(ctx, regID)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != enrollment.RegistrationAssigned || len(wire) >= growthMaxRecord {
		t.Errorf("service API record: status %q, %d bytes (limit %d)", rec.Status, len(wire), growthMaxRecord)
	}

	// What is stored, read from the file once the server is stopped.
	srv.Stop()
	st := growthInspect(t, dbPath, regID)
	growth := after - before
	t.Logf("%d re-registrations with a %d KB payload: zdps.db %.1f MB -> %.1f MB (growth %.1f MB); stored record %d bytes (%d beyond the payload, %d serials); service API record %d bytes; %d operations, %d certificates stored",
		growthRegistrations, growthPayloadBytes>>10, mb(before), mb(after), mb(growth), st.record, st.record-st.payload, st.serials, len(wire), st.operations, st.certificates)
	if growth >= growthMaxFileGrowth {
		t.Errorf("zdps.db grew by %.1f MB, want under %.0f MB", mb(growth), mb(growthMaxFileGrowth))
	}
	if st.record-st.payload >= growthMaxRecord {
		t.Errorf("stored record is %d bytes beyond its %d-byte payload, want under %d", st.record-st.payload, st.payload, growthMaxRecord)
	}
	if st.operations != 1 || !st.hasOperation(last.OperationID) {
		t.Errorf("%d operations stored (the last one %v), want only the last one %s", st.operations, st.hasOperation(last.OperationID), last.OperationID)
	}
	// Every issued certificate is unexpired: none may be lost, or a
	// revocation of the device would miss it.
	if st.certificates != growthRegistrations+1 {
		t.Errorf("%d certificates stored, want %d (one per registration)", st.certificates, growthRegistrations+1)
	}
}

func growthPayload(t *testing.T) json.RawMessage {
	t.Helper()
	pad := growthPayloadBytes - len(`{"blob":""}`)
	b, err := json.Marshal(map[string]string{"blob": strings.Repeat("x", pad)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func growthFileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// growthStored is what the store file holds for the device.
type growthStored struct {
	record, payload, serials int
	operations, certificates int
	operationIDs             map[string]bool
}

func (g growthStored) hasOperation(id string) bool { return g.operationIDs[enrollment.Key(id)] }

func growthInspect(t *testing.T, path, regID string) growthStored {
	t.Helper()
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	g := growthStored{operationIDs: map[string]bool{}}
	err = b.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, store.BucketRegistrations, enrollment.Key(regID))
		if err != nil {
			return err
		}
		var r enrollment.Registration
		if err := json.Unmarshal(it.Value, &r); err != nil {
			return err
		}
		g.record, g.payload, g.serials = len(it.Value), len(r.Payload), len(r.CertificateSerials)
		ops, err := tx.Scan(ctx, provisioning.BucketOperations, "", "", 0)
		if err != nil {
			return err
		}
		for _, op := range ops {
			g.operationIDs[op.Key] = true
		}
		g.operations = len(ops)
		certs, err := tx.Scan(ctx, revocation.BucketCertificates, "", "", 0)
		g.certificates = len(certs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func growthTail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

// TestGrowthExpiredCertificates proves that `zdps serve` prunes issued
// certificates once they expired: a revoked certificate is on the CRL
// while it is valid, and one CRL validity after it expired it has left
// the CRL and the store (its record and index entries). Certificates live
// 2 s here, the CRL 1 s, and the prune runs every 200 ms.
func TestGrowthExpiredCertificates(t *testing.T) {
	srv := zdpstest.Start(t, append([]string{"--cert-validity", "2s", "--crl-validity", "1s", "--prune-interval", "200ms"}, growthExtraArgs...)...)
	ctx := t.Context()
	cl := srv.Client()
	if _, err := cl.PutHub(ctx, &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	const regID = "expiring-dev"
	key := srv.SymmetricKeyEnrollment(regID)
	res, err := device.Register(ctx, device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: regID, SymmetricKey: key,
		GenerateKey: true, RootCAs: srv.RootCAs(), MaxWait: time.Minute,
	})
	if err != nil {
		t.Fatalf("register: %v\n%s", err, growthTail(srv.Logs()))
	}
	leaf := res.IssuedCertificateChain[0]
	// Deleting the record revokes the certificate.
	if err := cl.DeleteRegistration(ctx, regID, ""); err != nil {
		t.Fatal(err)
	}
	onCRL := func() bool {
		t.Helper()
		der, err := cl.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				return true
			}
		}
		return false
	}
	if time.Now().Before(leaf.NotAfter) && !onCRL() {
		t.Fatal("a revoked, unexpired certificate is not on the CRL")
	}

	// The prune logs each deletion; wait for it (the clock, not the
	// machine's speed, decides when it may happen).
	if !growthWaitLog(srv, `"records":"certificates"`, time.Minute) {
		t.Fatalf("no certificate pruned a minute after its expiry:\n%s", growthTail(srv.Logs()))
	}
	if time.Now().Before(leaf.NotAfter.Add(time.Second)) {
		t.Fatalf("a certificate was pruned before one CRL validity after its NotAfter %v", leaf.NotAfter)
	}
	if onCRL() {
		t.Error("an expired certificate is still on the CRL one CRL validity after its expiry")
	}
	srv.Stop()
	b, err := bolt.Open(filepath.Join(srv.DataDir, "zdps.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, bucket := range []store.Bucket{revocation.BucketCertificates, revocation.IndexCertificatesByRegistration, revocation.IndexCertificatesRevoked} {
		err := b.View(ctx, func(tx store.Tx) error {
			items, err := tx.Scan(ctx, bucket, "", "", 0)
			if err == nil && len(items) != 0 {
				t.Errorf("%d entries left in %s", len(items), bucket)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func growthWaitLog(srv *zdpstest.Server, substr string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if strings.Contains(srv.Logs(), substr) {
			return true
		}
	}
	return false
}
