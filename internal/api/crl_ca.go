package api

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CACertificateInfo describes one certificate of the embedded CA, as
// GET /ca answers it.
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

// CAInfo is the answer of GET /ca.
type CAInfo struct {
	Root         CACertificateInfo `json:"root"`
	Intermediate CACertificateInfo `json:"intermediate"`
}

func certInfo(c *x509.Certificate) CACertificateInfo {
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

// getCA describes the embedded CA's root and issuing intermediate (no key
// material: there is none to describe outside the sealed store).
func (a *API) getCA(w http.ResponseWriter, r *http.Request) {
	if a.cfg.CA == nil {
		a.writeError(w, r, errNoCA)
		return
	}
	a.writeJSON(w, http.StatusOK, CAInfo{Root: certInfo(a.cfg.CA.Root()), Intermediate: certInfo(a.cfg.CA.Intermediate())})
}

// getCABundle answers the intermediate then the root as PEM: the file for
// `openssl verify -CAfile`, hubs' trust stores and NODE_EXTRA_CA_CERTS.
func (a *API) getCABundle(w http.ResponseWriter, r *http.Request) {
	if a.cfg.CA == nil {
		a.writeError(w, r, errNoCA)
		return
	}
	b := a.cfg.CA.BundlePEM()
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
