package enrollment

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // DPS reports SHA-1 thumbprints; not used for security.
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"time"
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
		return nil, invalid("", "not a valid X.509 certificate: %v", err)
	}
	return cert, nil
}

// CertificateDER decodes one certificate given as PEM or base64 DER
// without parsing it: real-world TPM EK certificates need a more tolerant
// parser than crypto/x509.
func CertificateDER(s string) ([]byte, error) {
	if len(s) > MaxCertificateLength {
		return nil, invalid("", "certificate is longer than %d characters", MaxCertificateLength)
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, invalid("", "certificate is empty")
	}
	var der []byte
	if strings.HasPrefix(t, "-----BEGIN") {
		block, rest := pem.Decode([]byte(t))
		switch {
		case block == nil:
			return nil, invalid("", "malformed PEM")
		case block.Type != "CERTIFICATE":
			return nil, invalid("", "PEM block is %q, not CERTIFICATE", block.Type)
		case len(bytes.TrimSpace(rest)) != 0:
			return nil, invalid("", "exactly one PEM certificate is expected, found more data after it")
		}
		der = block.Bytes
	} else {
		// StdEncoding skips \r and \n, so base64 wrapped at 64 columns works.
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return nil, invalid("", "certificate is neither PEM nor base64 DER")
		}
		der = b
	}
	return der, nil
}

// CertificateInfo is the summary DPS answers instead of a certificate:
// subject and issuer, upper-case hex thumbprints and serial number, and the
// validity period in UTC (RFC 3339).
func CertificateInfo(c *x509.Certificate) *X509CertificateInfo {
	s1 := sha1.Sum(c.Raw) //nolint:gosec // display only
	s256 := sha256.Sum256(c.Raw)
	return &X509CertificateInfo{
		SubjectName:      c.Subject.String(),
		SHA1Thumbprint:   strings.ToUpper(hex.EncodeToString(s1[:])),
		SHA256Thumbprint: strings.ToUpper(hex.EncodeToString(s256[:])),
		IssuerName:       c.Issuer.String(),
		NotBeforeUTC:     c.NotBefore.UTC().Format(time.RFC3339),
		NotAfterUTC:      c.NotAfter.UTC().Format(time.RFC3339),
		SerialNumber:     strings.ToUpper(c.SerialNumber.Text(16)),
		Version:          c.Version,
	}
}

// Parsed returns the parsed certificate; it is only meaningful after
// Validate or a Decode function has accepted the document.
func (c *X509CertificateWithInfo) Parsed() (*x509.Certificate, error) {
	return ParseCertificate(c.Certificate)
}
