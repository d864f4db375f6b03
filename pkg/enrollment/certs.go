package enrollment

import (
	"crypto/sha1" //nolint:gosec // DPS reports SHA-1 thumbprints; not used for security.
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/enrollment/check"
)

// MaxCertificateLength bounds the textual form of one certificate, so a
// hostile document cannot make zdps parse megabytes per field.
const MaxCertificateLength = check.MaxCertificateLength

// ParseCertificate parses one X.509 certificate given as PEM (a single
// CERTIFICATE block, surrounding whitespace allowed) or as base64 DER, the
// two forms DPS accepts. Errors wrap ErrInvalid.
func ParseCertificate(s string) (*x509.Certificate, error) { return check.ParseCertificate(s) }

// CertificateDER decodes one certificate given as PEM or base64 DER
// without parsing it: real-world TPM EK certificates need a more tolerant
// parser than crypto/x509.
func CertificateDER(s string) ([]byte, error) { return check.CertificateDER(s) }

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
