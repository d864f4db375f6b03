package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
)

var (
	fuzzOnce sync.Once
	fuzzCA   *CA
)

// FuzzSignCSR feeds arbitrary bytes as a device CSR. It must never panic,
// must fail only with a sentinel error, and whatever it issues must carry
// the CSR's key and nothing but the policy's fields.
func FuzzSignCSR(f *testing.F) {
	fuzzOnce.Do(func() { fuzzCA, _ = newTestCA(f, nil) })
	c := fuzzCA
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa2048", "rsa1024"} {
		f.Add(makeCSR(f, testKey(f, kind), "fuzz-reg", nil))
	}
	f.Add(makeCSR(f, testKey(f, "p256"), "other", nil))
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	pol := LeafPolicy{RegistrationID: "fuzz-reg", DeviceID: "fuzz-device"}
	f.Fuzz(func(t *testing.T, der []byte) {
		is, err := c.SignCSR(der, pol)
		if err != nil {
			for _, s := range []error{ErrCSRMalformed, ErrCSRSignature, ErrCSRKey, ErrCSRSubject} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error outside the CSR sentinels: %v", err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatalf("issued for an unparseable CSR: %v", err)
		}
		cert := is.Certificate
		if csr.Subject.CommonName != pol.RegistrationID || cert.Subject.CommonName != pol.DeviceID || len(cert.Subject.Names) != 1 {
			t.Fatal("subject not from policy")
		}
		if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey) {
			t.Fatal("key not from the CSR")
		}
		if cert.IsCA || len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.URIs)+len(cert.EmailAddresses) != 0 {
			t.Fatal("fields from the CSR were copied")
		}
	})
}
