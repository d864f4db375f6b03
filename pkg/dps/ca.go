package dps

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// CACertificateInfo describes one certificate of zdps's embedded CA, as
// GET /ca answers it (a zdps extension, docs/protocol.md#service-api).
type CACertificateInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serialNumber"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// SHA256Thumbprint is the upper-case hex SHA-256 of the DER
	// certificate, as `openssl x509 -fingerprint -sha256` prints it
	// without colons.
	SHA256Thumbprint string `json:"sha256Thumbprint"`
}

// CAInfo is the answer of GET /ca: the embedded CA's root and issuing
// intermediate.
type CAInfo struct {
	Root         CACertificateInfo `json:"root"`
	Intermediate CACertificateInfo `json:"intermediate"`
}

// NewCACertificateInfo describes c.
func NewCACertificateInfo(c *x509.Certificate) CACertificateInfo {
	sum := sha256.Sum256(c.Raw)
	return CACertificateInfo{
		Subject:          c.Subject.String(),
		Issuer:           c.Issuer.String(),
		Serial:           fmt.Sprintf("%x", c.SerialNumber),
		NotBefore:        c.NotBefore.UTC(),
		NotAfter:         c.NotAfter.UTC(),
		SHA256Thumbprint: strings.ToUpper(hex.EncodeToString(sum[:])),
	}
}
