package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/store/memory"
)

// Both halves: a device makes a key and a CSR whose CN is its registration
// ID; zdps issues from policy and the device verifies the chain it gets.
func ExampleCA_SignCSR() {
	kek := make([]byte, 32)
	_, _ = rand.Read(kek) // in zdps serve: a key file or ca.KEKFromPassphrase
	authority, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: kek})
	if err != nil {
		panic(err)
	}

	// Device side.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "sensor-42"}}, key)

	// Service side, after attestation and allocation.
	issued, err := authority.SignCSR(csr, ca.LeafPolicy{RegistrationID: "sensor-42", DeviceID: "sensor-42"})
	if err != nil {
		panic(err)
	}
	// ... store issued.DER with the registration record, then answer with
	// issued.Chain as issuedCertificateChain.

	// Device side again.
	leaf, _ := x509.ParseCertificate(issued.Chain[0])
	inter, _ := x509.ParseCertificate(issued.Chain[1])
	pool := x509.NewCertPool()
	pool.AddCert(inter)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: authority.Roots(), Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	fmt.Println(leaf.Subject.CommonName, len(issued.Chain), err == nil)
	// Output: sensor-42 3 true
}
