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
	// Generation counts the intermediate's rotations (zdps ca rotate).
	Generation int `json:"generation,omitempty"`
	// KeyStore is the KMS holding the intermediate's key ("pkcs11",
	// "tpmkms"), empty when it is sealed in the store.
	KeyStore string `json:"keyStore,omitempty"`
	// Previous are the rotated-out intermediates still in the bundle.
	Previous []PreviousCAInfo `json:"previous,omitempty"`
	// PreviousRoots are roots rotated out, trusted and in the bundle until
	// KeepUntil; CrossSigned is the intermediate a root rotation made,
	// issued again by the previous root.
	PreviousRoots []PreviousCAInfo   `json:"previousRoots,omitempty"`
	CrossSigned   *CACertificateInfo `json:"crossSigned,omitempty"`
}

// PreviousCAInfo is a rotated-out intermediate during its overlap.
type PreviousCAInfo struct {
	CACertificateInfo
	RotatedAt time.Time `json:"rotatedAt"`
	// KeepUntil is when it leaves the bundle: its last certificate has
	// expired then.
	KeepUntil time.Time `json:"keepUntil"`
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
