package tpm

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-attestation/attest"

	"github.com/zdps/zdps/pkg/dps"
)

// MaxEKCertificateSize bounds the EK certificates VerifyEKCertificate reads.
const MaxEKCertificateSize = 16 << 10

var (
	// oidEKCertificate is tcg-kp-EKCertificate, the extended key usage of
	// EK certificates (TCG EK Credential Profile).
	oidEKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 1}
	// Extensions EK certificates mark critical that Go does not handle:
	// a subjectAltName holding only the TPM manufacturer, model and
	// version as a directoryName (the profile requires an empty subject
	// and a critical SAN), and subjectDirectoryAttributes (TPM
	// specification).
	oidSAN                 = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidSubjectDirectoryAtt = asn1.ObjectIdentifier{2, 5, 29, 9}
)

// EKVerifyOptions are the trust anchors of VerifyEKCertificate.
type EKVerifyOptions struct {
	// Roots are the TPM manufacturers' root certificates. Required.
	Roots *x509.CertPool
	// Intermediates help build the chain; optional.
	Intermediates *x509.CertPool
	// Now is the verification time; time.Now when zero.
	Now time.Time
}

// VerifyEKCertificate checks that der (DER, optionally with the TCG NV
// header, parsed tolerantly as go-attestation does for real-world EK
// certificates) is an EK certificate that chains to opts.Roots and
// certifies ek's public key. Errors wrap ErrEKCertificate.
//
// Checks: the certificate's RSA key equals the EK's; its extended key
// usage is absent or includes tcg-kp-EKCertificate (2.23.133.8.1); its key
// usage, when present, allows keyEncipherment; the chain verifies at Now.
// Because Go does not know the EK usage, the chain is verified with
// ExtKeyUsageAny after the leaf's usage was checked here; and a critical
// subjectAltName or subjectDirectoryAttributes (which EK certificates
// carry as the profile requires) does not fail the verification.
func VerifyEKCertificate(der []byte, ek *Public, opts EKVerifyOptions) error {
	if opts.Roots == nil {
		return fmt.Errorf("%w: no manufacturer roots configured", ErrEKCertificate)
	}
	cert, err := parseEKCertificate(der, ek)
	if err != nil {
		return err
	}
	c := *cert
	c.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(cert.UnhandledCriticalExtensions), func(o asn1.ObjectIdentifier) bool {
		return o.Equal(oidSAN) || o.Equal(oidSubjectDirectoryAtt)
	})
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if _, err := c.Verify(x509.VerifyOptions{
		Roots:         opts.Roots,
		Intermediates: opts.Intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, // the leaf's usage is checked above
	}); err != nil {
		return fmt.Errorf("%w: %v", ErrEKCertificate, err)
	}
	return nil
}

// CheckEKCertificate is VerifyEKCertificate without the chain: der is an
// EK certificate for ek's public key. It checks what an operator uploads
// before any manufacturer root is at hand.
func CheckEKCertificate(der []byte, ek *Public) error {
	_, err := parseEKCertificate(der, ek)
	return err
}

// parseEKCertificate parses der tolerantly and checks its key and usages
// against ek.
func parseEKCertificate(der []byte, ek *Public) (*x509.Certificate, error) {
	switch {
	case len(der) == 0:
		return nil, fmt.Errorf("%w: no EK certificate", ErrEKCertificate)
	case len(der) > MaxEKCertificateSize:
		return nil, fmt.Errorf("%w: EK certificate larger than %d bytes", ErrEKCertificate, MaxEKCertificateSize)
	case ek == nil || ek.Key == nil:
		return nil, fmt.Errorf("%w: no endorsement key to compare with", ErrEKCertificate)
	}
	cert, err := attest.ParseEKCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: the EK certificate does not parse", ErrEKCertificate)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(ek.Key) {
		return nil, fmt.Errorf("%w: the certificate does not certify the endorsement key", ErrEKCertificate)
	}
	if len(cert.ExtKeyUsage) > 0 || len(cert.UnknownExtKeyUsage) > 0 {
		if !slices.ContainsFunc(cert.UnknownExtKeyUsage, oidEKCertificate.Equal) {
			return nil, fmt.Errorf("%w: the extended key usage is not tcg-kp-EKCertificate", ErrEKCertificate)
		}
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return nil, fmt.Errorf("%w: the key usage does not allow keyEncipherment", ErrEKCertificate)
	}
	return cert, nil
}

// EKCertificateFromPayload returns the DER of the payload's
// tpmEkCertificate (dps.PayloadEKCertificateField), nil when the payload is not an object with that member
// as valid base64.
func EKCertificateFromPayload(payload []byte) []byte {
	var p map[string]json.RawMessage
	if len(payload) == 0 || json.Unmarshal(payload, &p) != nil {
		return nil
	}
	var s string
	if json.Unmarshal(p[dps.PayloadEKCertificateField], &s) != nil || len(s) > 2*MaxEKCertificateSize {
		return nil
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil
	}
	return der
}
