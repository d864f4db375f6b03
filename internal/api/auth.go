package api

import (
	"context"
	"errors"
	"fmt"
	"github.com/zdps/zdps/internal/audit"
	"net"
	"net/http"
	"strings"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// authorize admits a request whose SAS authenticates a policy holding
// right, and records the policy's name for the audit log.
func (a *API) authorize(right string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if !p.HasRight(right) {
			a.writeError(w, r, fmt.Errorf("%w: policy %q does not grant the %s right this call needs", errForbidden, p.KeyName, right))
			return
		}
		// The actor marks the request's writes for the audit trail
		// (audit.Changes records them in their own transactions).
		ctx := audit.WithActor(context.WithValue(r.Context(), policyKey, p.KeyName), "policy:"+p.KeyName)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticate checks a service SAS: well formed, issued for this host,
// naming a stored policy, signed with its primary or secondary key (the
// comparison is sas.Verify's, constant time) and unexpired within
// Config.TokenSkew. Every refusal wraps errUnauthorized with a reason
// written here, so no part of the token reaches the log.
func (a *API) authenticate(ctx context.Context, header string) (*enrollment.SharedAccessPolicy, error) {
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
// service API (internal/opsapi): the same SAS check, rights and actor.
func (a *API) Authorize(right string, next http.Handler) http.Handler {
	return a.authorize(right, a.requireAPIVersion(next))
}
