package serviceauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

var (
	// ErrUnauthorized: no, malformed, expired, forged or foreign SAS, or an
	// unknown policy. The wrapped reason is logged, never answered.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrBearerUnauthorized: a bearer token that is absent, malformed,
	// expired, forged, for another audience or issuer, or sent to a server
	// without OIDC. It is an ErrUnauthorized with its own public message.
	ErrBearerUnauthorized = fmt.Errorf("%w: bearer token refused", ErrUnauthorized)
)

// BearerVerifier checks an OIDC access token (internal/oidcauth's
// Bearer): it returns the user and the rights their roles grant (maybe
// none), or an error whose message is a reason holding no part of the
// token.
type BearerVerifier interface {
	Verify(ctx context.Context, token string) (principal.Principal, error)
}

// Authenticator checks the Authorization header of service API requests.
type Authenticator struct {
	// Policies are the stored shared access policies a SAS names.
	Policies *store.Collection[*enrollment.SharedAccessPolicy]
	// HostName is the host clients address; a SAS must name it in sr.
	HostName string
	// TokenSkew is the clock skew allowed on SAS expiry.
	TokenSkew time.Duration
	// Bearer, when set, admits bearer tokens; nil refuses them.
	Bearer BearerVerifier
	// Now is the clock.
	Now func() time.Time
}

// Authenticate finds who makes the request: a bearer token when the
// header says Bearer, else a service SAS.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (principal.Principal, error) {
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

// Lacks says why p may not make a call that needs right.
func Lacks(p principal.Principal, right string) string {
	if p.Kind == principal.KindPolicy {
		return fmt.Sprintf("policy %q does not grant the %s right this call needs", p.Name, right)
	}
	return fmt.Sprintf("%s %q does not hold the %s right this call needs (no role mapped from the identity provider's claims grants it)", p.Kind, p.Name, right)
}

// authenticateBearer checks an OIDC access token with Bearer.
func (a *Authenticator) authenticateBearer(ctx context.Context, tok string) (principal.Principal, error) {
	if a.Bearer == nil {
		return principal.Principal{}, fmt.Errorf("%w: a bearer token, but OIDC is not configured on this server (--oidc-issuer)", ErrBearerUnauthorized)
	}
	if tok == "" {
		return principal.Principal{}, fmt.Errorf("%w: empty bearer token", ErrBearerUnauthorized)
	}
	p, err := a.Bearer.Verify(ctx, tok)
	if err != nil {
		return principal.Principal{}, fmt.Errorf("%w: %v", ErrBearerUnauthorized, err)
	}
	return p, nil
}

// authenticateSAS checks a service SAS: well formed, issued for this host,
// naming a stored policy, signed with its primary or secondary key (the
// comparison is sas.Verify's, constant time) and unexpired within
// TokenSkew. Every refusal wraps ErrUnauthorized with a reason written
// here, so no part of the token reaches the log.
func (a *Authenticator) authenticateSAS(ctx context.Context, header string) (*enrollment.SharedAccessPolicy, error) {
	if header == "" {
		return nil, fmt.Errorf("%w: no Authorization header", ErrUnauthorized)
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed SharedAccessSignature", ErrUnauthorized)
	}
	sr, err := tok.DecodedResource()
	if err != nil || !a.hostMatches(sr) {
		return nil, fmt.Errorf("%w: sr does not name this host", ErrUnauthorized)
	}
	if tok.KeyName == "" {
		return nil, fmt.Errorf("%w: no skn", ErrUnauthorized)
	}
	p, err := a.Policies.Get(ctx, tok.KeyName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown policy", ErrUnauthorized)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: read policy: %w", err)
	}
	if err := tok.CheckExpiry(a.Now(), a.TokenSkew); err != nil {
		return nil, fmt.Errorf("%w: token expired", ErrUnauthorized)
	}
	// Both keys are tried so that either may sign (key rotation); each
	// comparison is constant time.
	for _, key := range p.Keys() {
		if tok.VerifySignature(key) == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: signature matches no key of policy %q", ErrUnauthorized, p.KeyName)
}

// hostMatches reports whether a token's resource names this service: the
// same host (case-insensitive), and the same port when both give one. The
// Node service SDK signs HostName exactly as written in the connection
// string, port included if any; other tools drop the port.
func (a *Authenticator) hostMatches(sr string) bool {
	sh, sp := splitHostPort(sr)
	wh, wp := splitHostPort(a.HostName)
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
