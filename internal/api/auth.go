package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/zdps/zdps/internal/api/serviceauth"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/principal"
)

// BearerVerifier checks an OIDC access token (serviceauth.BearerVerifier).
type BearerVerifier = serviceauth.BearerVerifier

// authorize admits a request whose credentials (a SAS, or a bearer token
// when Config.Bearer is set) authenticate a principal holding right, and
// marks the request with it for the audit trail.
func (a *API) authorize(right string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			if errors.Is(err, errBearerUnauthorized) {
				// RFC 6750: the client learns the token is the problem.
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			a.writeError(w, r, err)
			return
		}
		if !p.HasRight(right) {
			a.writeError(w, r, fmt.Errorf("%w: %s", errForbidden, serviceauth.Lacks(p, right)))
			return
		}
		// The actor marks the request's writes for the audit trail
		// (audit.Changes records them in their own transactions).
		ctx := audit.WithActor(principal.With(r.Context(), p), p.Actor())
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Authorize is authorize for routes served by other packages of the
// service API (internal/opsapi): the same SAS and bearer checks, rights
// and actor.
func (a *API) Authorize(right string, next http.Handler) http.Handler {
	return a.authorize(right, a.requireAPIVersion(next))
}
