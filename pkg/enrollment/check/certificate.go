package check

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
)

// MaxCertificateLength bounds the textual form of one certificate, so a
// hostile document cannot make zdps parse megabytes per field.
const MaxCertificateLength = 64 << 10

// ParseCertificate parses one X.509 certificate given as PEM (a single
// CERTIFICATE block, surrounding whitespace allowed) or as base64 DER, the
// two forms DPS accepts. Errors wrap ErrInvalid.
func ParseCertificate(s string) (*x509.Certificate, error) {
	der, err := CertificateDER(s)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, Invalid("", "not a valid X.509 certificate: %v", err)
	}
	return cert, nil
}

// CertificateDER decodes one certificate given as PEM or base64 DER
// without parsing it: real-world TPM EK certificates need a more tolerant
// parser than crypto/x509.
func CertificateDER(s string) ([]byte, error) {
	if len(s) > MaxCertificateLength {
		return nil, Invalid("", "certificate is longer than %d characters", MaxCertificateLength)
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, Invalid("", "certificate is empty")
	}
	var der []byte
	if strings.HasPrefix(t, "-----BEGIN") {
		block, rest := pem.Decode([]byte(t))
		switch {
		case block == nil:
			return nil, Invalid("", "malformed PEM")
		case block.Type != "CERTIFICATE":
			return nil, Invalid("", "PEM block is %q, not CERTIFICATE", block.Type)
		case len(bytes.TrimSpace(rest)) != 0:
			return nil, Invalid("", "exactly one PEM certificate is expected, found more data after it")
		}
		der = block.Bytes
	} else {
		// StdEncoding skips \r and \n, so base64 wrapped at 64 columns works.
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return nil, Invalid("", "certificate is neither PEM nor base64 DER")
		}
		der = b
	}
	return der, nil
}
