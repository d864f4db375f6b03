package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store/memory"
)

// delegate makes a gateway's CA key, has central sign it for site and
// stores the delegated state in a fresh store, as a gateway does at first
// start.
func delegate(t *testing.T, central *CA, site string, mod func(*Config)) (*CA, Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is, err := central.SignSiteCA(siteCSR(t, key), SiteCAPolicy{Site: site, Gateway: "gw-1", Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for _, der := range is.Chain {
		chain = append(chain, mustParse(t, der))
	}
	cfg := Config{Storage: BackendStorage(memory.New()), KEK: testKEK(t)}
	if mod != nil {
		mod(&cfg)
	}
	if err := StoreDelegated(context.Background(), cfg, chain, key, ""); err != nil {
		t.Fatalf("StoreDelegated: %v", err)
	}
	gw, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New on the delegated state: %v", err)
	}
	return gw, cfg
}

func TestDelegatedIssues(t *testing.T) {
	central, _ := newTestCA(t, nil)
	gw, _ := delegate(t, central, "plant-1", nil)
	if site, ok := gw.Delegated(); !ok || site != "plant-1" {
		t.Fatalf("Delegated() = %q, %v", site, ok)
	}
	if !gw.Root().Equal(central.Root()) {
		t.Fatal("the gateway's root is not central's")
	}
	key := testKey(t, "p256")
	is, err := gw.SignCSR(makeCSR(t, key, "dev-1", nil), LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := is.Certificate
	if leaf.Subject.CommonName != "dev-1" || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "zdps-site-plant-1" {
		t.Fatalf("subject %s", leaf.Subject)
	}
	if len(is.Chain) != 4 {
		t.Fatalf("chain of %d, want leaf, delegated, central intermediate, root", len(is.Chain))
	}
	delegated, inter := mustParse(t, is.Chain[1]), mustParse(t, is.Chain[2])
	if !inter.Equal(central.Intermediate()) || !mustParse(t, is.Chain[3]).Equal(central.Root()) {
		t.Fatal("the chain above the delegated CA is not central's")
	}
	// Hubs trust central's root only: both verifiers accept the leaf.
	if out, ok := opensslVerify(t, central.Root(), []*x509.Certificate{delegated, inter}, leaf); !ok {
		t.Fatalf("openssl verify refused: %s", out)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolOf(central.Root()), Intermediates: poolOf(delegated, inter), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("Go verify: %v", err)
	}
	if got := parsePEMCerts(t, gw.BundlePEM()); len(got) != 3 {
		t.Fatalf("bundle of %d certificates, want 3", len(got))
	}
	// The server certificate carries the whole chain and the site's O.
	tc, err := gw.ServerCertificate([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Certificate) != 3 {
		t.Fatalf("TLS chain of %d, want leaf and two intermediates", len(tc.Certificate))
	}
	srv := mustParse(t, tc.Certificate[0])
	if out, ok := opensslVerify(t, central.Root(), []*x509.Certificate{delegated, inter}, srv); !ok {
		t.Fatalf("openssl verify of the server certificate: %s", out)
	}
	// Its CRL is signed by the delegated CA.
	crlDER, err := gw.CRL([]Revoked{{Serial: is.Serial, RevokedAt: time.Now()}}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(delegated); err != nil {
		t.Fatalf("CRL not signed by the delegated CA: %v", err)
	}
}

func TestDelegatedExpires(t *testing.T) {
	central, _ := newTestCA(t, nil)
	clock := &fakeClock{t: time.Now()}
	gw, _ := delegate(t, central, "plant-1", func(c *Config) { c.Now = clock.Now })
	clock.Set(time.Now().Add(2 * time.Hour)) // the delegated CA was valid 1 h
	key := testKey(t, "p256")
	_, err := gw.SignCSR(makeCSR(t, key, "dev-1", nil), LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1"})
	if !errors.Is(err, ErrCAExpired) {
		t.Fatalf("SignCSR after the delegated CA expired: %v, want ErrCAExpired", err)
	}
}

func TestDelegatedRenewAndRefusals(t *testing.T) {
	ctx := context.Background()
	central, _ := newTestCA(t, nil)
	gw, cfg := delegate(t, central, "plant-1", nil)
	old := gw.Intermediate()

	// Renewal: a new key, a new delegated CA, the same root; a running CA
	// follows on Reload.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	is, err := central.SignSiteCA(siteCSR(t, key), SiteCAPolicy{Site: "plant-1", Gateway: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{mustParse(t, is.Chain[0]), mustParse(t, is.Chain[1]), mustParse(t, is.Chain[2])}
	if err := StoreDelegated(ctx, cfg, chain, key, ""); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if changed, err := gw.Reload(ctx); err != nil || !changed {
		t.Fatalf("Reload: %v %v", changed, err)
	}
	if gw.Intermediate().Equal(old) || !gw.Intermediate().Equal(chain[0]) {
		t.Fatal("the running CA did not switch to the renewed delegated CA")
	}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherCentral, _ := newTestCA(t, nil)
	cases := []struct {
		name  string
		chain []*x509.Certificate
		key   *ecdsa.PrivateKey
		want  string
	}{
		{"wrong key", chain, other, "not the delegated CA's"},
		{"no intermediate", []*x509.Certificate{chain[0], chain[2]}, key, "missing"},
		{"another root", []*x509.Certificate{chain[0], chain[1], otherCentral.Root()}, key, "chain"},
		{"root only", []*x509.Certificate{chain[2]}, key, "want the delegated CA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := StoreDelegated(ctx, cfg, tc.chain, tc.key, "")
			if !errors.Is(err, ErrDelegatedChain) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrDelegatedChain saying %q", err, tc.want)
			}
		})
	}
	// A store holding a CA of its own is never replaced.
	_, ownCfg := newTestCA(t, nil)
	if err := StoreDelegated(ctx, ownCfg, chain, key, ""); !errors.Is(err, ErrDelegatedChain) {
		t.Fatalf("over an own CA: %v", err)
	}
	// A delegated CA delegates no further (nor rotates:
	// TestDelegatedNeverRotates).
	if _, err := gw.SignSiteCA(siteCSR(t, other), SiteCAPolicy{Site: "plant-1", Gateway: "x"}); !errors.Is(err, ErrCannotDelegate) {
		t.Fatalf("SignSiteCA at a gateway: %v, want ErrCannotDelegate", err)
	}
}

func TestDelegatedTamperedChain(t *testing.T) {
	central, _ := newTestCA(t, nil)
	st := &mapStorage{}
	_, cfg := delegate(t, central, "plant-1", func(c *Config) { c.Storage = st })
	// A store writer swaps central's intermediate for another one: the
	// seal over the chain no longer opens.
	other, _ := newTestCA(t, nil)
	st.state = []byte(strings.Replace(string(st.state), b64(central.Intermediate().Raw), b64(other.Intermediate().Raw), 1))
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("New on a tampered chain: %v, want ErrCorruptState", err)
	}
}

// b64 is how JSON encodes a []byte.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestDelegatedKeyInKMS(t *testing.T) {
	ctx := context.Background()
	central, _ := newTestCA(t, nil)
	kms := newMemKMS("tpmkms")
	cfg := Config{Storage: BackendStorage(memory.New()), KEK: testKEK(t), KMS: kms}
	key, ref, err := NewDelegatedKey(ctx, cfg, "gateway-ca")
	if err != nil || ref == "" || !kmsHolds(kms, key) {
		t.Fatalf("NewDelegatedKey: %v, ref %q", err, ref)
	}
	is, err := central.SignSiteCA(siteCSR(t, key), SiteCAPolicy{Site: "plant-1", Gateway: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{mustParse(t, is.Chain[0]), mustParse(t, is.Chain[1]), mustParse(t, is.Chain[2])}
	if err := StoreDelegated(ctx, cfg, chain, key, ref); err != nil {
		t.Fatal(err)
	}
	gw, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if gw.KMS() != "tpmkms" {
		t.Fatalf("KMS() = %q", gw.KMS())
	}
	leafKey := testKey(t, "p256")
	leaf, err := gw.SignCSR(makeCSR(t, leafKey, "dev-1", nil), LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.Certificate.CheckSignatureFrom(chain[0]); err != nil {
		t.Fatalf("the leaf is not signed by the KMS-held delegated CA: %v", err)
	}
	// Without the KMS the state does not open.
	cfg.KMS = nil
	if _, err := New(ctx, cfg); !errors.Is(err, ErrKMSRequired) {
		t.Fatalf("New without the KMS: %v", err)
	}
}
