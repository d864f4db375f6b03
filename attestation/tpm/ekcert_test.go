package tpm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/zdps/zdps/attestation/tpm"
)

// ekCert issues an EK certificate as manufacturers do: empty subject,
// critical subjectAltName with only a directoryName, EKU
// tcg-kp-EKCertificate, keyEncipherment.
func ekCert(t *testing.T, ek *tpm.Public, notAfter time.Time) (der []byte, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "TPM Manufacturer Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour * 24 * 365),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	tpmName := pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 1}, Value: "id:414D4400"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 2}, Value: "zdps-sim"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 3}, Value: "id:0001"},
	}}
	dirName, _ := asn1.Marshal(tpmName.ToRDNSequence())
	san, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dirName}})
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:           x509.KeyUsageKeyEncipherment,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{{2, 23, 133, 8, 1}},
		ExtraExtensions:    []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: san}},
	}
	der, err = x509.CreateCertificate(rand.Reader, leaf, ca, ek.Key, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return der, roots
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
