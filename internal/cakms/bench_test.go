package cakms_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/cakms"
	"github.com/zdps/zdps/internal/cakms/cakmstest"
	"github.com/zdps/zdps/internal/store/memory"
)

// benchBackend starts a KMS for a benchmark and returns its URI; "" is
// softkms, the key sealed in the store.
type benchBackend struct {
	name  string
	start func(testing.TB) string
}

// benchBackends are the backends this test binary has: pkcs11_test.go adds
// SoftHSM2 when built with the pkcs11 tag.
var benchBackends = []benchBackend{
	{"softkms", func(testing.TB) string { return "" }},
	{"tpmkms-swtpm", func(t testing.TB) string { u, _ := cakmstest.SWTPM(t); return u }},
}

// BenchmarkIssue is the cost of issuing one device certificate (SignCSR:
// the CSR's checks and the intermediate's signature) with the
// intermediate's key in each backend, sequentially: one registration's CA
// work. certs/s is the most one issuing goroutine gets from the backend.
func BenchmarkIssue(b *testing.B) {
	dev, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bench-dev"}}, dev)
	if err != nil {
		b.Fatal(err)
	}
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			cfg := ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: make([]byte, 32)}
			if uri := be.start(b); uri != "" {
				keys, err := cakms.Open(b.Context(), uri, cakms.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = keys.Close() })
				cfg.KMS = keys
			}
			c, err := ca.New(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			p := ca.LeafPolicy{RegistrationID: "bench-dev", DeviceID: "bench-dev"}
			for b.Loop() {
				if _, err := c.SignCSR(csr, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
