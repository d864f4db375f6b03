package oidcauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// Errors of sign-in and token checks. Each is wrapped with a reason
// written by this package.
var (
	// ErrInvalidToken: a bearer token that does not verify (malformed,
	// forged, expired, another issuer or audience).
	ErrInvalidToken = errors.New("invalid token")
	// ErrSignIn: a console sign-in that failed (no sign-in in progress,
	// state or nonce mismatch, the provider refused, the ID token does not
	// verify).
	ErrSignIn = errors.New("sign-in failed")
	// ErrNoRights: the user signed in, but no value of the role claim maps
	// to a role.
	ErrNoRights = errors.New("no zdps role")
)

// DefaultRoleClaim is the claim whose values are mapped to roles.
const DefaultRoleClaim = "groups"

// Config configures New.
type Config struct {
	// Issuer is the provider's issuer URL (https://...); discovery reads
	// Issuer/.well-known/openid-configuration.
	Issuer string
	// ClientID and ClientSecret are the console's client at the provider
	// (a confidential web client; the secret may be empty for a public
	// one, PKCE protects the code either way).
	ClientID, ClientSecret string
	// RedirectURL is where the provider sends the browser back:
	// https://<host>/console/sso/callback. Required for Web.
	RedirectURL string
	// Audience is the aud access tokens must carry for the service API.
	// Required for Bearer. It must not be a client ID whose ID tokens
	// would then pass as access tokens.
	Audience string
	// RoleClaim names the claim mapped to roles; DefaultRoleClaim when
	// empty. A dotted name (realm_access.roles) walks nested objects.
	RoleClaim string
	// Roles maps values of the role claim to role presets (Presets).
	Roles map[string]string
	// Scopes the console asks for; openid, email and profile when nil.
	Scopes []string
	// HTTPClient reaches the issuer (its TLS trust); http.DefaultClient
	// when nil.
	HTTPClient *http.Client
	// Logger receives refusals with their reasons; required.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Provider is a discovered issuer with the mapping of its claims.
type Provider struct {
	cfg    Config
	op     *oidc.Provider
	mapper mapper
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	keys   *keySet
	algs   []string
}

// verifier checks JWTs of the issuer for audience aud.
func (p *Provider) verifier(aud string) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(p.cfg.Issuer, p.keys, &oidc.Config{ClientID: aud, Now: p.now, SupportedSigningAlgs: p.algs})
}

// KeyFetches is how many times the issuer's JWKS was fetched.
func (p *Provider) KeyFetches() int {
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	return p.keys.fetches
}

// DiscoveryTimeout bounds discovery at start.
const DiscoveryTimeout = 15 * time.Second

// New checks cfg and discovers the issuer.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	var errs []error
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !isLoopback(u)) {
		errs = append(errs, fmt.Errorf("issuer %q must be an https:// URL", cfg.Issuer))
	}
	if cfg.ClientID == "" && cfg.Audience == "" {
		errs = append(errs, errors.New("a client ID (console sign-in) or an audience (bearer tokens) is required"))
	}
	if cfg.Logger == nil {
		errs = append(errs, errors.New("Logger is required"))
	}
	if len(cfg.Roles) == 0 {
		errs = append(errs, errors.New("no role mapping: nobody could sign in; map claim values to roles (--oidc-role VALUE=ROLE)"))
	}
	for v, role := range cfg.Roles {
		if _, ok := Presets[role]; !ok {
			errs = append(errs, fmt.Errorf("role mapping %q: unknown role %q; the roles are %s", v, role, strings.Join(RoleNames(), ", ")))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("oidc: invalid config: %w", errors.Join(errs...))
	}
	p := &Provider{
		cfg:    cfg,
		mapper: mapper{claim: cmp.Or(cfg.RoleClaim, DefaultRoleClaim), roles: cfg.Roles},
		client: cfg.HTTPClient,
		log:    cfg.Logger,
		now:    cfg.Now,
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.client == nil {
		p.client = http.DefaultClient
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.client), DiscoveryTimeout)
	defer cancel()
	p.op, err = oidc.NewProvider(dctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery of issuer %s failed (is it reachable from this host, and is its TLS certificate trusted? --oidc-ca-file adds CAs): %w", cfg.Issuer, err)
	}
	var meta struct {
		JWKSURL string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.op.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return nil, fmt.Errorf("oidc: issuer %s publishes no jwks_uri", cfg.Issuer)
	}
	p.algs = []string{oidc.RS256}
	if len(meta.Algs) > 0 {
		p.algs = meta.Algs
	}
	p.keys = &keySet{url: meta.JWKSURL, client: p.client, now: p.now}
	for _, a := range p.algs {
		if a != "none" {
			p.keys.algs = append(p.keys.algs, jose.SignatureAlgorithm(a))
		}
	}
	if _, err := p.keys.refresh(dctx); err != nil {
		return nil, fmt.Errorf("oidc: issuer %s: %w", cfg.Issuer, err)
	}
	return p, nil
}

// isLoopback admits http:// issuers on the loopback interface only, for
// a provider running beside zdps in development.
func isLoopback(u *url.URL) bool {
	h := u.Hostname()
	return u.Scheme == "http" && (h == "localhost" || h == "127.0.0.1" || h == "::1")
}

// Endpoint is the provider's OAuth endpoints (for the CLI's device grant).
func (p *Provider) Endpoint() oauth2.Endpoint { return p.op.Endpoint() }

// ctx carries the HTTP client that reaches the issuer.
func (p *Provider) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, p.client)
}
