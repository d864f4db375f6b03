package device

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"

	"github.com/zdps/zdps/pkg/enrollment"
)

// GenerateKey returns a new ECDSA P-256 private key, the key type every
// DPS issuer accepts.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("device: generate P-256 key: %w", err)
	}
	return k, nil
}

// GenerateCSR returns a DER PKCS#10 request signed by key whose subject is
// CN=regID and nothing else: no SANs, no extensions (the issuer builds the
// certificate from its policy and ignores them anyway).
func GenerateCSR(regID string, key crypto.Signer) ([]byte, error) {
	if err := enrollment.ValidateRegistrationID(regID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if key == nil {
		return nil, invalidConfig("GenerateCSR needs a key")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: regID},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("device: create CSR: %w", err)
	}
	return der, nil
}
