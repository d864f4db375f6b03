package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// errNoCA: the instance runs without an embedded CA, so there is no CA to
// describe and no CRL.
var errNoCA = fmt.Errorf("%w: this instance has no embedded CA", errRouteNotFound)

// CRLSource signs and caches the CRL GET /crl answers
// (internal/revocation.CRLPublisher is one).
type CRLSource interface {
	CRL(ctx context.Context) ([]byte, error)
}

// IssuerCRLSource, when the CRLSource has it, answers GET /crl?issuer=T:
// the CRL signed by the CA certificate whose SHA-256 thumbprint is T (the
// current intermediate, or one rotated out during its overlap, as GET /ca
// lists them). ok is false for an unknown issuer.
type IssuerCRLSource interface {
	IssuerCRL(ctx context.Context, thumbprint string) (der []byte, ok bool, err error)
}

// errNoIssuer: GET /crl?issuer= names no intermediate of this CA.
var errNoIssuer = fmt.Errorf("%w: no intermediate of this CA has that SHA-256 thumbprint (GET /ca lists them)", errRouteNotFound)

// getCRL answers the current CRL, DER-encoded and signed by the issuing
// intermediate. It needs no authentication: relying parties (hubs,
// gateways, OpenSSL) fetch CRLs anonymously and the CRL's signature is
// its integrity. The CRL is signed only when the revoked set changed or
// it ages (revocation.CRLPublisher), never per request.
func (a *API) getCRL(w http.ResponseWriter, r *http.Request) {
	if a.cfg.CRL == nil {
		a.writeError(w, r, errNoCA)
		return
	}
	var der []byte
	var err error
	if tp := r.URL.Query().Get("issuer"); tp != "" {
		src, ok := a.cfg.CRL.(IssuerCRLSource)
		if !ok {
			a.writeError(w, r, errNoIssuer)
			return
		}
		der, ok, err = src.IssuerCRL(r.Context(), strings.ToUpper(tp))
		if err == nil && !ok {
			err = errNoIssuer
		}
	} else {
		der, err = a.cfg.CRL.CRL(r.Context())
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/pkix-crl")
	h.Set("Content-Length", strconv.Itoa(len(der)))
	// Caches may keep it briefly; a revocation shows within a minute.
	h.Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(der)
	}
}
