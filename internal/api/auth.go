package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// BearerVerifier checks an OIDC access token (internal/oidcauth's
// Bearer): it returns the user and the rights their roles grant (maybe
// none), or an error whose message is a reason holding no part of the
// token.
type BearerVerifier interface {
	Verify(ctx context.Context, token string) (principal.Principal, error)
}

// authorize admits a request whose credentials (a SAS, or a bearer token
// when Config.Bearer is set) authenticate a principal holding right, and
// marks the request with it for the audit trail.
func (a *API) authorize(right string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			if errors.Is(err, errBearerUnauthorized) {
				// RFC 6750: the client learns the token is the problem.
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			a.writeError(w, r, err)
			return
		}
		if !p.HasRight(right) {
			a.writeError(w, r, fmt.Errorf("%w: %s", errForbidden, lacks(p, right)))
			return
		}
		// The actor marks the request's writes for the audit trail
		// (audit.Changes records them in their own transactions).
		ctx := audit.WithActor(principal.With(r.Context(), p), p.Actor())
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// lacks says why p may not make a call that needs right.
func lacks(p principal.Principal, right string) string {
	if p.Kind == principal.KindPolicy {
		return fmt.Sprintf("policy %q does not grant the %s right this call needs", p.Name, right)
	}
	return fmt.Sprintf("%s %q does not hold the %s right this call needs (no role mapped from the identity provider's claims grants it)", p.Kind, p.Name, right)
}

// authenticate finds who makes the request: a bearer token when the
// header says Bearer, else a service SAS.
func (a *API) authenticate(ctx context.Context, header string) (principal.Principal, error) {
	if scheme, tok, _ := strings.Cut(header, " "); strings.EqualFold(scheme, "Bearer") {
		return a.authenticateBearer(ctx, strings.TrimSpace(tok))
	}
	p, err := a.authenticateSAS(ctx, header)
	if err != nil {
		return principal.Principal{}, err
	}
	var rights []string
	for _, r := range strings.Split(p.Rights, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rights = append(rights, r)
		}
	}
	return principal.Principal{Kind: principal.KindPolicy, Name: p.KeyName, Rights: rights}, nil
}

// authenticateBearer checks an OIDC access token with Config.Bearer.
func (a *API) authenticateBearer(ctx context.Context, tok string) (principal.Principal, error) {
	if a.cfg.Bearer == nil {
		return principal.Principal{}, fmt.Errorf("%w: a bearer token, but OIDC is not configured on this server (--oidc-issuer)", errBearerUnauthorized)
	}
	if tok == "" {
		return principal.Principal{}, fmt.Errorf("%w: empty bearer token", errBearerUnauthorized)
	}
	p, err := a.cfg.Bearer.Verify(ctx, tok)
	if err != nil {
		return principal.Principal{}, fmt.Errorf("%w: %v", errBearerUnauthorized, err)
	}
	return p, nil
}

// authenticate checks a service SAS: well formed, issued for this host,
// naming a stored policy, signed with its primary or secondary key (the
// comparison is sas.Verify's, constant time) and unexpired within
// Config.TokenSkew. Every refusal wraps errUnauthorized with a reason
// written here, so no part of the token reaches the log.
func (a *API) authenticateSAS(ctx context.Context, header string) (*enrollment.SharedAccessPolicy, error) {
	if header == "" {
		return nil, fmt.Errorf("%w: no Authorization header", errUnauthorized)
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed SharedAccessSignature", errUnauthorized)
	}
	sr, err := tok.DecodedResource()
	if err != nil || !a.hostMatches(sr) {
		return nil, fmt.Errorf("%w: sr does not name this host", errUnauthorized)
	}
	if tok.KeyName == "" {
		return nil, fmt.Errorf("%w: no skn", errUnauthorized)
	}
	p, err := a.store.Policies.Get(ctx, tok.KeyName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown policy", errUnauthorized)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: read policy: %w", err)
	}
	if err := tok.CheckExpiry(a.now(), a.cfg.TokenSkew); err != nil {
		return nil, fmt.Errorf("%w: token expired", errUnauthorized)
	}
	// Both keys are tried so that either may sign (key rotation); each
	// comparison is constant time.
	for _, key := range p.Keys() {
		if tok.VerifySignature(key) == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: signature matches no key of policy %q", errUnauthorized, p.KeyName)
}

// hostMatches reports whether a token's resource names this service: the
// same host (case-insensitive), and the same port when both give one. The
// Node service SDK signs HostName exactly as written in the connection
// string, port included if any; other tools drop the port.
func (a *API) hostMatches(sr string) bool {
	sh, sp := splitHostPort(sr)
	wh, wp := splitHostPort(a.cfg.HostName)
	if sh == "" || !strings.EqualFold(sh, wh) {
		return false
	}
	return sp == "" || wp == "" || sp == wp
}

func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
}

// Authorize is authorize for routes served by other packages of the
// service API (internal/opsapi): the same SAS and bearer checks, rights
// and actor.
func (a *API) Authorize(right string, next http.Handler) http.Handler {
	return a.authorize(right, a.requireAPIVersion(next))
}
