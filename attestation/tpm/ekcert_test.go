package tpm_test

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/testpki"
)

// ekCert issues a manufacturer-style EK certificate under a new root.
func ekCert(t testing.TB, ek *tpm.Public, notAfter time.Time) (der []byte, roots *x509.CertPool) {
	t.Helper()
	root := testpki.Issue(t, "TPM Manufacturer Root", true, nil)
	roots = x509.NewCertPool()
	roots.AddCert(root.Cert)
	return testpki.EKCertificate(t, root, ek.Key, notAfter), roots
}

func TestVerifyEKCertificate(t *testing.T) {
	k, _ := keys(t)
	ek, _ := tpm.ParseEK(tpm.EKTemplatePublic(k))
	other := fakeEK(t)
	good, roots := ekCert(t, ek, time.Now().Add(time.Hour))
	expired, _ := ekCert(t, ek, time.Now().Add(-time.Minute))
	_, otherRoots := ekCert(t, ek, time.Now().Add(time.Hour))
	nvWrapped := append([]byte{0x10, 0x01, 0x00, byte(len(good) >> 8), byte(len(good))}, good...)
	tests := []struct {
		name  string
		der   []byte
		ek    *tpm.Public
		roots *x509.CertPool
		ok    bool
	}{
		{"manufacturer-style certificate", good, ek, roots, true},
		{"with the TCG NV header", nvWrapped, ek, roots, true},
		{"with trailing bytes", append(append([]byte{}, good...), 0, 0, 0), ek, roots, true},
		{"for another EK", good, other, roots, false},
		{"unknown manufacturer", good, ek, otherRoots, false},
		{"expired", expired, ek, roots, false},
		{"garbage", []byte{0x30, 0x03, 1, 2, 3}, ek, roots, false},
		{"none", nil, ek, roots, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tpm.VerifyEKCertificate(tt.der, tt.ek, tpm.EKVerifyOptions{Roots: tt.roots})
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, tpm.ErrEKCertificate)) {
				t.Fatalf("VerifyEKCertificate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	payload := []byte(`{"tpmEkCertificate":"` + base64.StdEncoding.EncodeToString(good) + `","other":1}`)
	if err := tpm.VerifyEKCertificate(tpm.EKCertificateFromPayload(payload), ek, tpm.EKVerifyOptions{Roots: roots}); err != nil {
		t.Fatalf("from payload: %v", err)
	}
}
