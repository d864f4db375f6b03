package upstream

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestGatewayRenewal: a gateway past two thirds of its certificates'
// lives gets a new client certificate and a new delegated CA from a real
// central, and its running CA switches to it; before that it renews
// nothing.
func TestGatewayRenewal(t *testing.T) {
	ctx := context.Background()
	central := zdpstest.Start(t, "--site-ca-validity", "24h")
	c := central.Client()
	if _, err := c.PutHub(ctx, &enrollment.Hub{Name: "hub.plant.example.net"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSite(ctx, &enrollment.Site{Name: "plant", Hubs: []string{"hub.plant.example.net"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{RegistrationID: "gw-1", Spec: enrollment.Spec{Site: "plant",
		Capabilities: &enrollment.DeviceCapabilities{IoTEdge: true},
		Attestation:  &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}}}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(ctx, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(keys.SymmetricKey.PrimaryKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey); err != nil {
		t.Fatal(err)
	}
	g := Config{Upstream: "https://" + central.Addr(), UpstreamCAFile: central.CAFile(),
		IDScope: central.IDScope(), RegistrationID: "gw-1", KeyFile: keyFile, SyncInterval: time.Second}
	var idScope string
	kek := make([]byte, 32)
	caCfg := ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: kek, Logger: slog.New(slog.DiscardHandler)}
	if err := g.Start(ctx, dir, &idScope, caCfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if idScope != central.IDScope() {
		t.Fatalf("ID scope %q, want central's", idScope)
	}
	authority, err := ca.New(ctx, caCfg)
	if err != nil {
		t.Fatal(err)
	}
	rt := g.rt
	cert0, ca0 := rt.cert.Load().Leaf, authority.Intermediate()
	if site, ok := authority.Delegated(); !ok || site != "plant" {
		t.Fatalf("the gateway's CA is not delegated for plant: %q %v", site, ok)
	}

	rt.renewDue(ctx, authority, caCfg, time.Now())
	if !rt.cert.Load().Leaf.Equal(cert0) || !authority.Intermediate().Equal(ca0) {
		t.Fatal("renewed before two thirds of the lives")
	}
	// Past two thirds of the delegated CA's 24 h (and of nothing else):
	// only the CA is renewed.
	rt.renewDue(ctx, authority, caCfg, ca0.NotBefore.Add(17*time.Hour))
	if authority.Intermediate().Equal(ca0) || !rt.cert.Load().Leaf.Equal(cert0) {
		t.Fatal("the delegated CA was not renewed alone")
	}
	ca1 := authority.Intermediate()
	if ca1.NotAfter.Before(ca0.NotAfter) || !authority.Root().Equal(centralRoot(t, central)) {
		t.Fatal("the renewed delegated CA is not a later one under central's root")
	}
	// Past two thirds of the client certificate's life: a new one, also
	// written to the data directory for the next start.
	rt.renewDue(ctx, authority, caCfg, cert0.NotBefore.Add(cert0.NotAfter.Sub(cert0.NotBefore)*3/4))
	if rt.cert.Load().Leaf.Equal(cert0) {
		t.Fatal("the client certificate was not renewed")
	}
	g2 := g
	g2.rt = nil
	idScope2 := "0ne00000001"
	if err := g2.Start(ctx, dir, &idScope2, caCfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if idScope2 != "0ne00000001" {
		t.Fatalf("a given ID scope became %q", idScope2)
	}
	if !g2.rt.cert.Load().Leaf.Equal(rt.cert.Load().Leaf) {
		t.Fatal("a restart does not use the renewed client certificate")
	}
}

// centralRoot is the last certificate of s's bundle: its root.
func centralRoot(t *testing.T, s *zdpstest.Server) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	var last *x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return last
		}
		if last, err = x509.ParseCertificate(blk.Bytes); err != nil {
			t.Fatal(err)
		}
	}
}
