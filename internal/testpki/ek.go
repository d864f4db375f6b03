package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

// EKCertificate issues, under manufacturer, a TPM EK certificate for ek
// as manufacturers do: empty subject, a critical subjectAltName holding
// only a directoryName with the TPM's vendor, model and version, EKU
// tcg-kp-EKCertificate and keyEncipherment. It returns the DER.
func EKCertificate(t testing.TB, manufacturer *Cert, ek crypto.PublicKey, notAfter time.Time) []byte {
	t.Helper()
	tpmName := pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 1}, Value: "id:414D4400"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 2}, Value: "zdps-sim"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 3}, Value: "id:0001"},
	}}
	dirName, err := asn1.Marshal(tpmName.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dirName}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:           x509.KeyUsageKeyEncipherment,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{{2, 23, 133, 8, 1}},
		ExtraExtensions:    []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: san}},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, manufacturer.Cert, ek, manufacturer.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
