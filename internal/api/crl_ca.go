package api

import (
	"crypto/x509"
	"net/http"
	"strconv"

	"github.com/zdps/zdps/pkg/dps"
)

// CAView is what GET /ca and /ca/bundle describe of the embedded CA
// (internal/ca.CA has it).
type CAView interface {
	Root() *x509.Certificate
	Intermediate() *x509.Certificate
	BundlePEM() []byte
}

// getCA describes the embedded CA's root and issuing intermediate (no key
// material: there is none to describe outside the sealed store).
func (a *API) getCA(w http.ResponseWriter, r *http.Request) {
	if a.cfg.CA == nil {
		a.writeError(w, r, errNoCA)
		return
	}
	info := dps.CAInfo{
		Root:         dps.NewCACertificateInfo(a.cfg.CA.Root()),
		Intermediate: dps.NewCACertificateInfo(a.cfg.CA.Intermediate()),
	}
	if h, ok := a.cfg.CA.(CAHistoryView); ok {
		h.CAHistory(&info)
	}
	a.writeJSON(w, http.StatusOK, info)
}

// CAHistoryView, when the CAView has it, adds the rotation generation, the
// KMS of the key, the rotated-out intermediates and roots to GET /ca.
type CAHistoryView interface {
	CAHistory(info *dps.CAInfo)
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
