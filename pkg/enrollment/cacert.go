package enrollment

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/enrollment/check"
)

// CACertificate is a CA certificate registered with zdps, the equivalent of
// a DPS "certificate" resource: enrollments name it in
// attestation.x509.caReferences, and it anchors their devices' chains only
// once its owner has proved possession of its private key (IsVerified).
//
// Proof of possession: the owner asks for a verification code, signs a
// certificate whose subject CN is that code with the CA's key, and presents
// it; the code is random, valid for a limited time, and consumed by a
// successful verification. Replacing the certificate clears IsVerified.
type CACertificate struct {
	Versioned
	// Name is the case-insensitive key (DPS certificate name).
	Name string `json:"name"`
	// Certificate is the CA certificate as PEM or base64 DER.
	Certificate string `json:"certificate"`
	// Info summarises Certificate; read-only, filled by Validate.
	Info *X509CertificateInfo `json:"info,omitempty"`
	// IsVerified says whether proof of possession succeeded for this
	// certificate.
	IsVerified bool `json:"isVerified"`
	// VerificationCode is the current one-time code, "" when none is
	// outstanding. Never part of a GET answer (see Redacted).
	VerificationCode string `json:"verificationCode,omitempty"`
	// VerificationCodeExpiry is when VerificationCode stops being accepted.
	VerificationCodeExpiry *time.Time `json:"verificationCodeExpiryUtc,omitempty"`
}

// StoreKey is the case-insensitive key of the CA certificate.
func (c *CACertificate) StoreKey() string { return Key(c.Name) }

// MaxCACertificateNameLength bounds the name of a CA certificate.
const MaxCACertificateNameLength = 128

// ValidateCACertificateName applies the registration ID character rule to
// CA certificate names (letters, digits and ": . _ -", 1 to 128).
func ValidateCACertificateName(name string) error { return check.ID("name", name) }

// caCertificateRequest is what a client may write: the name and the
// certificate. The read-only fields a client may echo back from a GET are
// accepted and ignored, so a read-modify-write round trip works.
type caCertificateRequest struct {
	Name                   string               `json:"name"`
	Certificate            string               `json:"certificate"`
	Info                   *X509CertificateInfo `json:"info,omitempty"`
	IsVerified             *bool                `json:"isVerified,omitempty"`
	ETag                   string               `json:"etag,omitempty"`
	CreatedDateTimeUTC     *time.Time           `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC *time.Time           `json:"lastUpdatedDateTimeUtc,omitempty"`
}

// DecodeCACertificate decodes and validates a CA certificate sent by a
// client. The result is unverified, with no code, whatever the body says.
func DecodeCACertificate(b []byte) (*CACertificate, error) {
	var r caCertificateRequest
	if err := check.Decode(b, &r); err != nil {
		return nil, err
	}
	c := &CACertificate{Name: r.Name, Certificate: r.Certificate}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the name and that the certificate parses and is a CA
// certificate (basic constraints CA:TRUE, or an X.509 v1 root), and fills
// Info.
func (c *CACertificate) Validate() error {
	if err := ValidateCACertificateName(c.Name); err != nil {
		return err
	}
	if c.Certificate == "" {
		return check.Invalid("certificate", "is required (PEM or base64 DER)")
	}
	cert, err := ParseCertificate(c.Certificate)
	if err != nil {
		return check.Prefixed("certificate", err)
	}
	if !IsCA(cert) {
		return check.Invalid("certificate", "is not a CA certificate (basic constraints CA:TRUE is required)")
	}
	c.Info = CertificateInfo(cert)
	return nil
}

// Parsed returns the parsed certificate.
func (c *CACertificate) Parsed() (*x509.Certificate, error) { return ParseCertificate(c.Certificate) }

// Redacted returns a copy fit for an answer: without the verification code.
func (c *CACertificate) Redacted() *CACertificate {
	if c == nil {
		return nil
	}
	out := *c
	out.Versioned = c.Versioned.clone()
	out.VerificationCode = ""
	out.VerificationCodeExpiry = nil
	if c.Info != nil {
		i := *c.Info
		out.Info = &i
	}
	return &out
}

// IsCA reports whether c may issue certificates: basic constraints CA:TRUE,
// or a version 1 certificate (old roots have no extensions), as
// crypto/x509 itself accepts for a parent.
func IsCA(c *x509.Certificate) bool {
	return c.BasicConstraintsValid && c.IsCA || c.Version < 3 && !c.BasicConstraintsValid
}

// Index values of X.509 trust material. Store indexes of enrollment groups
// and CA certificates use them, so a device's chain finds its enrollment
// group without a scan.
const (
	certKeyThumbprint = "sha256:"
	certKeySubject    = "subject:"
	certKeyCAName     = "ca:"
)

// CertificateThumbprintKey is the index value of a certificate by its
// SHA-256 thumbprint.
func CertificateThumbprintKey(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return certKeyThumbprint + hex.EncodeToString(s[:])
}

// SubjectKey is the index value of the certificates whose subject is the
// DER name rawName (a certificate's RawSubject, or the RawIssuer of a
// certificate it may have issued).
func SubjectKey(rawName []byte) string {
	s := sha256.Sum256(rawName)
	return certKeySubject + hex.EncodeToString(s[:])
}

// CAReferenceKey is the index value of the groups whose caReferences name
// the CA certificate name.
func CAReferenceKey(name string) string { return certKeyCAName + strings.ToLower(name) }

// certificateKeys are the index values of one certificate.
func certificateKeys(c *x509.Certificate) []string {
	return []string{CertificateThumbprintKey(c), SubjectKey(c.RawSubject)}
}

// X509IndexKeys are the index values of the group's X.509 trust material:
// thumbprint and subject of each signing certificate, and each CA
// reference. Certificates that do not parse are skipped (Validate refuses
// them before a group is stored).
func (g *EnrollmentGroup) X509IndexKeys() []string {
	if g == nil || g.Attestation == nil || g.Attestation.X509 == nil {
		return nil
	}
	x := g.Attestation.X509
	var out []string
	if x.SigningCertificates != nil {
		for _, c := range []*X509CertificateWithInfo{x.SigningCertificates.Primary, x.SigningCertificates.Secondary} {
			if c == nil || c.Certificate == "" {
				continue
			}
			if cert, err := ParseCertificate(c.Certificate); err == nil {
				out = append(out, certificateKeys(cert)...)
			}
		}
	}
	if x.CAReferences != nil {
		for _, n := range []string{x.CAReferences.Primary, x.CAReferences.Secondary} {
			if n != "" {
				out = append(out, CAReferenceKey(n))
			}
		}
	}
	return out
}

// IndexKeys are the index values of the CA certificate: its thumbprint and
// its subject.
func (c *CACertificate) IndexKeys() []string {
	if c == nil || c.Certificate == "" {
		return nil
	}
	cert, err := ParseCertificate(c.Certificate)
	if err != nil {
		return nil
	}
	return certificateKeys(cert)
}

// CAReferenceNames returns the CA certificate names an attestation
// references, primary first.
func (a *AttestationMechanism) CAReferenceNames() []string {
	if a == nil || a.X509 == nil || a.X509.CAReferences == nil {
		return nil
	}
	var out []string
	for _, n := range []string{a.X509.CAReferences.Primary, a.X509.CAReferences.Secondary} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}
