package kms

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestRotateUnderLoad: two replicas on one PostgreSQL store register
// devices from a group without pause (zdps bench on one, in-process loads
// on both) while `zdps ca rotate` runs. Both
// switch to the new intermediate without a restart, no registration
// fails, every certificate issued before and after verifies against the
// bundle published afterwards, the CRL is re-signed by the new
// intermediate, and `zdps ca show` lists the outgoing one with its end.
func TestRotateUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two zdps serve on PostgreSQL")
	}
	url, schema := pgtest.Schema(t)
	storeURL := pgtest.StoreURL(url, schema)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	kekFile := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kekFile, []byte(hex.EncodeToString(kek)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := zdpstest.Start(t, "--store", storeURL, "--kek-file", kekFile)
	b := zdpstest.Start(t, "--store", storeURL, "--kek-file", kekFile)
	ctx := t.Context()
	cl := a.Client()
	if _, err := cl.PutHub(ctx, &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "fleet", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	gk, err := cl.GroupKeys(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	groupKey, err := base64.StdEncoding.DecodeString(gk.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	before, err := cl.GetCA(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// zdps bench registers against replica b through the whole rotation
	// (about 10 s at 40 registrations/s); it exits 1 if any device fails.
	benchCtx, cancelBench := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelBench()
	bench := exec.CommandContext(benchCtx, zdpstest.Binary(t), "bench", "--data-dir", b.DataDir, "--endpoint", b.Addr(),
		"--attestation", "symmetric-group", "--devices", "400", "--rate", "40", "--concurrency", "8", "--setup", "--cleanup", "--progress=false")
	var benchOut bytes.Buffer
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()

	la := zdpstest.StartLoad(t, a, zdpstest.LoadConfig{Group: "fleet", GroupKey: groupKey, Prefix: "ra", Workers: 2})
	lb := zdpstest.StartLoad(t, b, zdpstest.LoadConfig{Group: "fleet", GroupKey: groupKey, Prefix: "rb", Workers: 2})
	la.WaitAcked(20, time.Minute)
	lb.WaitAcked(20, time.Minute)

	out, err := zdps(t, "ca", "rotate", "--data-dir", t.TempDir(), "--store", storeURL, "--kek-file", kekFile, "--overlap", "48h")
	if err != nil {
		t.Fatalf("zdps ca rotate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ca.rotate") {
		t.Fatalf("zdps ca rotate says:\n%s", out)
	}
	// Both replicas switch, without a restart, within a few seconds.
	for _, srv := range []*zdpstest.Server{a, b} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			info, err := srv.Client().GetCA(ctx)
			if err == nil && info.Intermediate.Serial != before.Intermediate.Serial {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s still on the old intermediate: %v", srv.Addr(), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Keep registering on the new intermediate for a while.
	na, nb := len(la.Acked()), len(lb.Acked())
	la.WaitAcked(na+20, time.Minute)
	lb.WaitAcked(nb+20, time.Minute)
	if err := <-benchDone; err != nil {
		t.Fatalf("zdps bench during the rotation: %v\n%s", err, benchOut.String())
	}
	t.Logf("zdps bench during the rotation:\n%s", benchOut.String())
	ackedA, failedA := la.Stop()
	ackedB, failedB := lb.Stop()
	if failedA+failedB != 0 {
		for _, srv := range []*zdpstest.Server{a, b} {
			for _, line := range strings.Split(srv.Logs(), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`) {
					t.Log(line)
				}
			}
		}
		t.Fatalf("%d of %d registrations failed during the rotation", failedA+failedB, ackedA+ackedB+failedA+failedB)
	}

	// Every certificate, before and after, verifies against the bundle
	// published now; both intermediates issued some.
	bundle, err := cl.CABundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	byIssuer := map[string]int{}
	certs := parseBundle(t, bundle)
	if len(certs) != 3 {
		t.Fatalf("bundle during the overlap has %d certificates, want new, old, root", len(certs))
	}
	for _, c := range certs {
		if c.IsCA && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
		} else {
			inters.AddCert(c)
		}
	}
	for _, ack := range append(la.Acked(), lb.Acked()...) {
		if _, err := ack.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("%s: %v", ack.RegistrationID, err)
		}
		byIssuer[ack.Leaf.Issuer.CommonName]++
	}
	if len(byIssuer) != 2 {
		t.Fatalf("certificates by issuer: %v, want both intermediates", byIssuer)
	}
	t.Logf("registrations acknowledged: %d (none failed); by issuer %v", ackedA+ackedB, byIssuer)

	// The CRL is re-signed by the new intermediate (zdps ca crl checks it
	// against the bundle's first certificate), on both replicas.
	for _, srv := range []*zdpstest.Server{a, b} {
		if out, err := zdps(t, "ca", "crl", "--data-dir", srv.DataDir); err != nil || !strings.Contains(out, "verified") {
			t.Fatalf("zdps ca crl on %s: %v\n%s", srv.Addr(), err, out)
		}
	}
	// The outgoing intermediate's CRL is still served, signed by it
	// (GET /crl?issuer=), and lists a certificate it issued that is
	// revoked after the rotation.
	var oldLeaf *zdpstest.Ack
	for _, ack := range la.Acked() {
		if ack.Leaf.Issuer.CommonName == "zdps Intermediate CA" {
			oldLeaf = &ack
			break
		}
	}
	if err := cl.DeleteRegistration(ctx, oldLeaf.RegistrationID, ""); err != nil {
		t.Fatal(err)
	}
	var oldInter *x509.Certificate
	for _, c := range certs {
		if c.Subject.CommonName == "zdps Intermediate CA" {
			oldInter = c
		}
	}
	for _, srv := range []*zdpstest.Server{a, b} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			crl := fetchCRL(t, srv, "?issuer="+before.Intermediate.SHA256Thumbprint)
			if err := crl.CheckSignatureFrom(oldInter); err != nil {
				t.Fatalf("the old intermediate's CRL from %s: %v", srv.Addr(), err)
			}
			if listed(crl, oldLeaf.Leaf) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the old intermediate's CRL from %s does not list the revoked certificate", srv.Addr())
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	if resp, err := a.HTTPClient().Get("https://" + a.Addr() + "/crl?issuer=00FF"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("CRL of an unknown issuer: %v %v", resp, err)
	}

	// zdps ca show lists the outgoing intermediate and when it leaves.
	out, err = zdps(t, "ca", "show", "--data-dir", a.DataDir)
	if err != nil || !strings.Contains(out, "previous") || !strings.Contains(out, before.Intermediate.Serial) {
		t.Fatalf("zdps ca show: %v\n%s", err, out)
	}
	// Root rotation under load: a new root and intermediate, the
	// intermediate cross-signed by the old root. Devices and hubs that
	// trust only the old root keep accepting what is issued.
	beforeRoot, err := cl.GetCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lc := zdpstest.StartLoad(t, a, zdpstest.LoadConfig{Group: "fleet", GroupKey: groupKey, Prefix: "rc", Workers: 2})
	ld := zdpstest.StartLoad(t, b, zdpstest.LoadConfig{Group: "fleet", GroupKey: groupKey, Prefix: "rd", Workers: 2})
	lc.WaitAcked(10, time.Minute)
	if out, err := zdps(t, "ca", "rotate", "--root", "--data-dir", t.TempDir(), "--store", storeURL, "--kek-file", kekFile, "--overlap", "48h"); err != nil || !strings.Contains(out, "ca.rotate-root") {
		t.Fatalf("zdps ca rotate --root: %v\n%s", err, out)
	}
	for _, srv := range []*zdpstest.Server{a, b} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			info, err := srv.Client().GetCA(ctx)
			if err == nil && info.Root.Serial != beforeRoot.Root.Serial && info.CrossSigned != nil && len(info.PreviousRoots) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s did not take the new root: %v", srv.Addr(), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	nc, nd := len(lc.Acked()), len(ld.Acked())
	lc.WaitAcked(nc+10, time.Minute)
	ld.WaitAcked(nd+10, time.Minute)
	if _, failed := lc.Stop(); failed != 0 {
		t.Fatalf("%d registrations failed during the root rotation", failed)
	}
	if _, failed := ld.Stop(); failed != 0 {
		t.Fatalf("%d registrations failed during the root rotation", failed)
	}
	bundle, err = cl.CABundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldRootOnly := x509.NewCertPool()
	bundleInters := x509.NewCertPool()
	var newRootSeen bool
	for _, c := range parseBundle(t, bundle) {
		switch {
		case fmt.Sprintf("%x", c.SerialNumber) == beforeRoot.Root.Serial:
			oldRootOnly.AddCert(c)
		case c.IsCA && c.CheckSignatureFrom(c) == nil:
			newRootSeen = true
		default:
			bundleInters.AddCert(c)
		}
	}
	if !newRootSeen {
		t.Fatal("the bundle lacks the new root")
	}
	newIssuer := 0
	for _, ack := range append(lc.Acked(), ld.Acked()...) {
		if _, err := ack.Leaf.Verify(x509.VerifyOptions{Roots: oldRootOnly, Intermediates: bundleInters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("%s (issued by %s) does not verify against the old root alone: %v", ack.RegistrationID, ack.Leaf.Issuer.CommonName, err)
		}
		if ack.Leaf.Issuer.CommonName == "zdps Intermediate CA 3" {
			newIssuer++
		}
	}
	if newIssuer == 0 {
		t.Fatal("no certificate from the new root's intermediate")
	}
	out, err = zdps(t, "ca", "show", "--data-dir", a.DataDir)
	if err != nil || !strings.Contains(out, "cross-signed") || !strings.Contains(out, "previous root") {
		t.Fatalf("zdps ca show after the root rotation: %v\n%s", err, out)
	}

	// The rotations are in the audit trail, once a replica sealed them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err = zdps(t, "audit", "list", "--data-dir", a.DataDir, "--action", "ca.")
		if err == nil && strings.Contains(out, "ca.rotate ") && strings.Contains(out, "ca.rotate-root") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zdps audit list: no ca.rotate event: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func parseBundle(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, blk := range pemBlocks(b) {
		c, err := x509.ParseCertificate(blk)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func fetchCRL(t *testing.T, srv *zdpstest.Server, query string) *x509.RevocationList {
	t.Helper()
	resp, err := srv.HTTPClient().Get("https://" + srv.Addr() + "/crl" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /crl%s: %d %v %s", query, resp.StatusCode, err, der)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func listed(crl *x509.RevocationList, leaf *x509.Certificate) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

func pemBlocks(b []byte) [][]byte {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		out = append(out, blk.Bytes)
	}
}
