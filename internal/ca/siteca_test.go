package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func siteCSR(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// signBelow signs a certificate for a new P-256 key with issuer's key, the
// way a gateway (or an attacker holding its key) could.
func signBelow(t *testing.T, issuer *x509.Certificate, issuerKey crypto.Signer, subject pkix.Name, isCA bool) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// opensslVerify runs `openssl verify` of leaf with root trusted and
// untrusted as the chain, and returns its output and whether it accepted.
func opensslVerify(t *testing.T, root *x509.Certificate, untrusted []*x509.Certificate, leaf *x509.Certificate) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required (scripts/test-setup.sh installs it)")
	}
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "root.pem"), root)
	writePEM(t, filepath.Join(dir, "chain.pem"), untrusted...)
	writePEM(t, filepath.Join(dir, "leaf.pem"), leaf)
	out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "root.pem"),
		"-untrusted", filepath.Join(dir, "chain.pem"), filepath.Join(dir, "leaf.pem")).CombinedOutput()
	return string(out), err == nil
}

func TestSignSiteCA(t *testing.T) {
	c, _ := newTestCA(t, nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	is, err := c.SignSiteCA(siteCSR(t, key), SiteCAPolicy{Site: "plant-1", Gateway: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	sub := is.Certificate
	if !sub.IsCA || sub.MaxPathLen != 0 || !sub.MaxPathLenZero {
		t.Fatalf("IsCA %v MaxPathLen %d zero %v", sub.IsCA, sub.MaxPathLen, sub.MaxPathLenZero)
	}
	if d := sub.NotAfter.Sub(sub.NotBefore); d > DefaultSiteCAValidity+time.Minute {
		t.Fatalf("validity %v", d)
	}
	if site, ok := SiteOf(sub); !ok || site != "plant-1" {
		t.Fatalf("SiteOf = %q, %v", site, ok)
	}
	want, _ := SitePolicy("plant-1")
	if len(sub.Policies) != 1 || !sub.Policies[0].Equal(want) {
		t.Fatalf("policies %v, want %v", sub.Policies, want)
	}
	if len(is.Chain) != 3 || !sub.Equal(mustParse(t, is.Chain[0])) {
		t.Fatal("chain is not site CA, intermediate, root")
	}
	inter, root := c.Intermediate(), c.Root()

	for _, tc := range []struct {
		name   string
		chain  func() ([]*x509.Certificate, *x509.Certificate)
		accept bool
		why    string
	}{
		{"leaf of its site", func() ([]*x509.Certificate, *x509.Certificate) {
			leaf, _ := signBelow(t, sub, key, pkix.Name{Organization: []string{"zdps-site-plant-1"}, CommonName: "dev-1"}, false)
			return []*x509.Certificate{sub, inter}, leaf
		}, true, ""},
		{"leaf for another site", func() ([]*x509.Certificate, *x509.Certificate) {
			leaf, _ := signBelow(t, sub, key, pkix.Name{Organization: []string{"zdps-site-plant-2"}, CommonName: "dev-1"}, false)
			return []*x509.Certificate{sub, inter}, leaf
		}, false, "subtree"},
		{"leaf without the site O", func() ([]*x509.Certificate, *x509.Certificate) {
			leaf, _ := signBelow(t, sub, key, pkix.Name{CommonName: "dev-1", Organization: []string{"Contoso"}}, false)
			return []*x509.Certificate{sub, inter}, leaf
		}, false, "subtree"},
		{"CA below the site CA", func() ([]*x509.Certificate, *x509.Certificate) {
			below, belowKey := signBelow(t, sub, key, pkix.Name{Organization: []string{"zdps-site-plant-1"}, CommonName: "sub"}, true)
			leaf, _ := signBelow(t, below, belowKey, pkix.Name{Organization: []string{"zdps-site-plant-1"}, CommonName: "dev-1"}, false)
			return []*x509.Certificate{below, sub, inter}, leaf
		}, false, "path length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			untrusted, leaf := tc.chain()
			out, ok := opensslVerify(t, root, untrusted, leaf)
			if ok != tc.accept {
				t.Fatalf("openssl verify accepted=%v, want %v:\n%s", ok, tc.accept, out)
			}
			if !tc.accept && !strings.Contains(out, tc.why) {
				t.Fatalf("openssl refused for another reason than %q:\n%s", tc.why, out)
			}
			// Go's verifier ignores the (non-critical) directoryName
			// constraint but enforces the path length, and accepts the
			// site's own leaves: Go clients of hubs keep working.
			pool := x509.NewCertPool()
			for _, u := range untrusted {
				pool.AddCert(u)
			}
			_, err := leaf.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			if tc.accept && err != nil {
				t.Fatalf("Go Verify: %v", err)
			}
			if tc.why == "path length" && err == nil {
				t.Fatal("Go Verify accepted a CA below the site CA")
			}
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignSiteCARefusals(t *testing.T) {
	now := time.Now()
	c, _ := newTestCA(t, func(cfg *Config) { cfg.Now = func() time.Time { return now } })
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name string
		csr  []byte
		p    SiteCAPolicy
		want error
	}{
		{"no site", siteCSR(t, p256), SiteCAPolicy{Gateway: "gw"}, ErrSiteCA},
		{"no gateway", siteCSR(t, p256), SiteCAPolicy{Site: "s"}, ErrSiteCA},
		{"too long", siteCSR(t, p256), SiteCAPolicy{Site: "s", Gateway: "gw", Validity: MaxSiteCAValidity + time.Hour}, ErrSiteCA},
		{"negative", siteCSR(t, p256), SiteCAPolicy{Site: "s", Gateway: "gw", Validity: -time.Hour}, ErrSiteCA},
		{"RSA key", siteCSR(t, testKey(t, "rsa2048")), SiteCAPolicy{Site: "s", Gateway: "gw"}, ErrCSRKey},
		{"Ed25519 key", siteCSR(t, testKey(t, "ed25519")), SiteCAPolicy{Site: "s", Gateway: "gw"}, ErrCSRKey},
		{"garbage", []byte{0x30, 0x03, 1, 2, 3}, SiteCAPolicy{Site: "s", Gateway: "gw"}, ErrCSRMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.SignSiteCA(tc.csr, tc.p); !errors.Is(err, tc.want) {
				t.Fatalf("SignSiteCA = %v, want %v", err, tc.want)
			}
		})
	}
	// Never past the intermediate.
	is, err := c.SignSiteCA(siteCSR(t, p256), SiteCAPolicy{Site: "s", Gateway: "gw", Validity: MaxSiteCAValidity})
	if err != nil {
		t.Fatal(err)
	}
	if is.Certificate.NotAfter.After(c.Intermediate().NotAfter) {
		t.Fatal("site CA outlives the intermediate")
	}
	if _, ok := SiteOf(c.Intermediate()); ok {
		t.Fatal("SiteOf accepted the intermediate")
	}
}

// A CA from before edge gateways (intermediate path length 0, root 1), or
// an imported one like it, cannot delegate; one without path lengths can.
func TestSignSiteCACannotDelegate(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name      string
		root, int int
		zero      bool
		want      error
	}{
		{"intermediate 0", 2, 0, true, ErrCannotDelegate},
		{"root 1", 1, 1, false, ErrCannotDelegate},
		{"no constraints", -1, -1, false, nil},
		{"root 2, intermediate 1", 2, 1, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := newExtCA(t, "p256", func(root, inter *x509.Certificate) {
				root.MaxPathLen, inter.MaxPathLen, inter.MaxPathLenZero = tc.root, tc.int, tc.zero
			})
			c, err := Import(t.Context(), Config{Storage: &mapStorage{}, KEK: testKEK(t)}, ext.bundle(t, nil))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.SignSiteCA(siteCSR(t, p256), SiteCAPolicy{Site: "s", Gateway: "gw"}); !errors.Is(err, tc.want) {
				t.Fatalf("SignSiteCA = %v, want %v", err, tc.want)
			}
		})
	}
}
