package ca

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// BenchmarkSignCSR is the whole issuing path for a P-256 device CSR: parse,
// key and signature checks, build, sign, re-parse.
func BenchmarkSignCSR(b *testing.B) {
	c, _ := newTestCA(b, nil)
	csr := makeCSR(b, testKey(b, "p256"), "bench", nil)
	pol := LeafPolicy{RegistrationID: "bench", DeviceID: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.SignCSR(csr, pol); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkECDSASign is the bare P-256 signature, for comparison: the floor
// under BenchmarkSignCSR.
func BenchmarkECDSASign(b *testing.B) {
	k := testKey(b, "p256").(*ecdsa.PrivateKey)
	h := sha256.Sum256([]byte("tbs certificate"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ecdsa.SignASN1(rand.Reader, k, h[:]); err != nil {
			b.Fatal(err)
		}
	}
}
