package ca

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	oidSKI  = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidKU   = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidSAN  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBC   = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidCRLD = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAKI  = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidEKU  = asn1.ObjectIdentifier{2, 5, 29, 37}
)

func TestSignCSR(t *testing.T) {
	c, _ := newTestCA(t, func(c *Config) { c.CRLURL = "https://zdps.example/crl" })
	const reg = "dev-01"
	pol := LeafPolicy{RegistrationID: reg, DeviceID: "device-one"}

	// A CSR asking for everything a device should never get.
	greedy := func(r *x509.CertificateRequest) {
		r.Subject.Organization = []string{"Evil Corp"}
		r.DNSNames = []string{"zdps.example", "*.example"}
		r.IPAddresses = []net.IP{net.ParseIP("10.0.0.1")}
		r.EmailAddresses = []string{"root@example"}
		r.URIs = []*url.URL{{Scheme: "spiffe", Host: "x", Path: "/admin"}}
		bc, _ := asn1.Marshal(struct {
			IsCA bool `asn1:"optional"`
		}{true})
		ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x06}, BitLength: 7}) // keyCertSign|cRLSign
		r.ExtraExtensions = []pkix.Extension{
			{Id: oidBC, Critical: true, Value: bc},
			{Id: oidKU, Critical: true, Value: ku},
			{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}},
		}
	}
	twoCNs := func(r *x509.CertificateRequest) {
		r.Subject = pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidCommonName, Value: "other"}, {Type: oidCommonName, Value: reg}}}
	}
	flipSig := func(der []byte) []byte { d := bytes.Clone(der); d[len(d)-1] ^= 0x01; return d }

	tests := []struct {
		name   string
		csr    func(t *testing.T) []byte
		policy LeafPolicy
		want   error
	}{
		{"P-256", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), reg, nil) }, pol, nil},
		{"P-384", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p384"), reg, nil) }, pol, nil},
		{"Ed25519", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "ed25519"), reg, nil) }, pol, nil},
		{"RSA-2048", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "rsa2048"), reg, nil) }, pol, nil},
		{"RSA-2048 PSS", func(t *testing.T) []byte {
			return makeCSR(t, testKey(t, "rsa2048"), reg, func(r *x509.CertificateRequest) { r.SignatureAlgorithm = x509.SHA256WithRSAPSS })
		}, pol, nil},
		{"extra SANs, extensions and CA=true are not copied", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), reg, greedy) }, pol, nil},
		{"RSA-1024 refused", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "rsa1024"), reg, nil) }, pol, ErrCSRKey},
		{"P-224 refused", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p224"), reg, nil) }, pol, ErrCSRKey},
		{"P-521 refused", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p521"), reg, nil) }, pol, ErrCSRKey},
		{"SHA-1 signature refused", func(t *testing.T) []byte {
			return makeCSR(t, testKey(t, "rsa2048"), reg, func(r *x509.CertificateRequest) { r.SignatureAlgorithm = x509.SHA1WithRSA })
		}, pol, ErrCSRSignature},
		{"CN mismatch", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), "dev-02", nil) }, pol, ErrCSRSubject},
		{"CN differs in case only", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), "DEV-01", nil) }, pol, ErrCSRSubject},
		{"CN with trailing space", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), reg+" ", nil) }, pol, ErrCSRSubject},
		{"no CN", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), "", nil) }, pol, ErrCSRSubject},
		{"two CNs", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), "", twoCNs) }, pol, ErrCSRSubject},
		{"bad signature", func(t *testing.T) []byte { return flipSig(makeCSR(t, testKey(t, "p256"), reg, nil)) }, pol, ErrCSRSignature},
		{"bad Ed25519 signature", func(t *testing.T) []byte { return flipSig(makeCSR(t, testKey(t, "ed25519"), reg, nil)) }, pol, ErrCSRSignature},
		{"garbage", func(*testing.T) []byte { return []byte("not a CSR at all") }, pol, ErrCSRMalformed},
		{"empty", func(*testing.T) []byte { return nil }, pol, ErrCSRMalformed},
		{"PEM instead of DER", func(t *testing.T) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: makeCSR(t, testKey(t, "p256"), reg, nil)})
		}, pol, ErrCSRMalformed},
		{"trailing data", func(t *testing.T) []byte { return append(makeCSR(t, testKey(t, "p256"), reg, nil), 0) }, pol, ErrCSRMalformed},
		{"oversized", func(*testing.T) []byte { return make([]byte, MaxCSRSize+1) }, pol, ErrCSRMalformed},
		{"a certificate, not a CSR", func(*testing.T) []byte { return c.Root().Raw }, pol, ErrCSRMalformed},
		{"no registration ID in policy", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), reg, nil) }, LeafPolicy{DeviceID: "d"}, ErrInvalidPolicy},
		{"no device ID in policy", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), reg, nil) }, LeafPolicy{RegistrationID: reg}, ErrInvalidPolicy},
		{"negative validity", func(t *testing.T) []byte { return makeCSR(t, testKey(t, "p256"), reg, nil) }, LeafPolicy{RegistrationID: reg, DeviceID: "d", Validity: -time.Hour}, ErrInvalidPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csrDER := tt.csr(t)
			is, err := c.SignCSR(csrDER, tt.policy)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				if is != nil {
					t.Fatal("an error came with a certificate")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			csr, _ := x509.ParseCertificateRequest(csrDER)
			checkPolicyOnly(t, c, is, csr.PublicKey, tt.policy.DeviceID, true)
		})
	}
}

// checkPolicyOnly asserts the leaf carries exactly the policy's fields.
func checkPolicyOnly(t *testing.T, c *CA, is *Issued, pub crypto.PublicKey, deviceID string, withCRL bool) {
	t.Helper()
	cert := is.Certificate
	if !bytes.Equal(cert.Raw, is.DER) || len(is.Chain) != 3 || !bytes.Equal(is.Chain[0], is.DER) ||
		!bytes.Equal(is.Chain[1], c.Intermediate().Raw) || !bytes.Equal(is.Chain[2], c.Root().Raw) {
		t.Fatal("Issued.DER/Chain are not leaf, intermediate, root")
	}
	if len(cert.Subject.Names) != 1 || cert.Subject.CommonName != deviceID {
		t.Errorf("subject %q, want only CN=%s", cert.Subject, deviceID)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Error("public key is not the CSR's")
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		t.Error("certificate carries SANs")
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		t.Error("not CA=false")
	}
	wantKU := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		wantKU |= x509.KeyUsageKeyEncipherment
	}
	if cert.KeyUsage != wantKU {
		t.Errorf("key usage %b, want %b", cert.KeyUsage, wantKU)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(cert.UnknownExtKeyUsage) != 0 {
		t.Errorf("ext key usage %v %v", cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if !bytes.Equal(cert.AuthorityKeyId, c.Intermediate().SubjectKeyId) || len(cert.SubjectKeyId) == 0 {
		t.Error("key identifiers")
	}
	want := []asn1.ObjectIdentifier{oidSKI, oidKU, oidBC, oidAKI, oidEKU}
	if withCRL {
		want = append(want, oidCRLD)
	}
	var got []string
	for _, e := range cert.Extensions {
		got = append(got, e.Id.String())
	}
	var wantS []string
	for _, o := range want {
		wantS = append(wantS, o.String())
	}
	slices.Sort(got)
	slices.Sort(wantS)
	if !slices.Equal(got, wantS) {
		t.Errorf("extensions %v, want %v", got, wantS)
	}
	if n, _ := new(big.Int).SetString(is.Serial, 16); n == nil || n.Cmp(cert.SerialNumber) != 0 || cert.SerialNumber.Sign() <= 0 || len(is.Serial) != 32 {
		t.Errorf("serial %q vs %s", is.Serial, cert.SerialNumber)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: c.Roots(), Intermediates: poolOf(c.Intermediate()),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: poolOf(c.Intermediate())}); err == nil {
		t.Error("a device certificate verifies for server auth")
	}
}

func TestLeafValidity(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: start}
	c, _ := newTestCA(t, func(c *Config) {
		c.Now = clk.Now
		c.IntermediateValidity = 400 * 24 * time.Hour
		c.DefaultLeafValidity = 30 * 24 * time.Hour
	})
	csr := makeCSR(t, testKey(t, "p256"), "d", nil)
	interEnd := c.Intermediate().NotAfter
	tests := []struct {
		name     string
		now      time.Time
		validity time.Duration
		wantEnd  time.Time
		want     error
	}{
		{"default", start, 0, start.Add(30 * 24 * time.Hour), nil},
		{"policy", start, 48 * time.Hour, start.Add(48 * time.Hour), nil},
		{"capped at the intermediate", start, 10 * 365 * 24 * time.Hour, interEnd, nil},
		{"near the intermediate's end", interEnd.Add(-time.Hour), 0, interEnd, nil},
		{"intermediate expired", interEnd.Add(time.Second), 0, time.Time{}, ErrCAExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(tt.now)
			is, err := c.SignCSR(csr, LeafPolicy{RegistrationID: "d", DeviceID: "d", Validity: tt.validity})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if !is.Certificate.NotAfter.Equal(tt.wantEnd) {
				t.Errorf("NotAfter %s, want %s", is.Certificate.NotAfter, tt.wantEnd)
			}
			if want := tt.now.Add(-time.Minute); !is.Certificate.NotBefore.Equal(want) {
				t.Errorf("NotBefore %s, want %s", is.Certificate.NotBefore, want)
			}
		})
	}
}

func TestSignCSRConcurrentUniqueSerials(t *testing.T) {
	c, _ := newTestCA(t, nil)
	csr := makeCSR(t, testKey(t, "p256"), "dev", nil)
	const n = 1000
	serials := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			is, err := c.SignCSR(csr, LeafPolicy{RegistrationID: "dev", DeviceID: "dev"})
			if err != nil {
				t.Error(err)
				return
			}
			serials[i] = is.Serial
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, s := range serials {
		if s == "" || seen[s] {
			t.Fatalf("serial %q missing or repeated", s)
		}
		seen[s] = true
	}
}

// TestOpenSSLVerify checks the issued certificate with another verifier, the
// way an operator would with the exported bundle.
func TestOpenSSLVerify(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	c, _ := newTestCA(t, nil)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := write("bundle.pem", c.BundlePEM())
	root := write("root.pem", pemCert(c.Root().Raw))
	inter := write("inter.pem", pemCert(c.Intermediate().Raw))
	// 128 characters: the longest device ID, twice X.520's 64 for a CN.
	longID := strings.Repeat("d", 128)
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa2048", "long device ID"} {
		t.Run(kind, func(t *testing.T) {
			key, dev := kind, "dev"
			if kind == "long device ID" {
				key, dev, kind = "p256", longID, "long"
			}
			is, err := c.SignCSR(makeCSR(t, testKey(t, key), "reg", nil), LeafPolicy{RegistrationID: "reg", DeviceID: dev})
			if err != nil {
				t.Fatal(err)
			}
			leaf := write(kind+".pem", pemCert(is.DER))
			for _, args := range [][]string{
				{"verify", "-purpose", "sslclient", "-CAfile", bundle, leaf},
				{"verify", "-purpose", "sslclient", "-x509_strict", "-CAfile", root, "-untrusted", inter, leaf},
			} {
				out, err := exec.Command(openssl, args...).CombinedOutput()
				if err != nil || !bytes.Contains(out, []byte(": OK")) {
					t.Errorf("openssl %v: %v\n%s", args, err, out)
				}
			}
			// And it must not pass as a server certificate.
			if out, err := exec.Command(openssl, "verify", "-purpose", "sslserver", "-CAfile", bundle, leaf).CombinedOutput(); err == nil && bytes.Contains(out, []byte(": OK")) {
				t.Errorf("openssl accepts a device certificate for sslserver:\n%s", out)
			}
		})
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parsePEMCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// encodings lists the ways a secret could show up in a log line.
func encodings(b []byte) []string {
	return []string{hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
}
