package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/spf13/pflag"

	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/oidcauth"
	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/pkg/dps"
)

// oidcConfig configures single sign-on (README "Single sign-on (OIDC)").
type oidcConfig struct {
	Issuer           string
	ClientID         string
	ClientSecretFile string
	RedirectURL      string
	Audience         string
	RoleClaim        string
	Roles            []string
	CAFile           string
	CLIClientID      string
	CLIScopes        []string
}

func (c *oidcConfig) register(f *pflag.FlagSet) {
	f.StringVar(&c.Issuer, "oidc-issuer", "", "OpenID Connect issuer URL (https://...); turns on console single sign-on and bearer tokens on the service API; discovered at start")
	f.StringVar(&c.ClientID, "oidc-client-id", "", "the console's client ID at the issuer (authorization code flow with PKCE)")
	f.StringVar(&c.ClientSecretFile, "oidc-client-secret-file", "", "file holding the console client's secret (none for a public client)")
	f.StringVar(&c.RedirectURL, "oidc-redirect-url", "", "redirect URL registered for the console client (default https://<hostname>/console/sso/callback)")
	f.StringVar(&c.Audience, "oidc-audience", "", "audience (aud) the service API requires of bearer access tokens; empty accepts no bearer token")
	f.StringVar(&c.RoleClaim, "oidc-role-claim", oidcauth.DefaultRoleClaim, "token claim whose values are mapped to roles (a dotted name such as realm_access.roles walks nested objects)")
	f.StringArrayVar(&c.Roles, "oidc-role", nil, "map a value of the role claim to a role, VALUE=ROLE (repeatable); roles: "+strings.Join(oidcauth.RoleNames(), ", "))
	f.StringVar(&c.CAFile, "oidc-ca-file", "", "PEM CAs to trust for the issuer besides the system roots")
	f.StringVar(&c.CLIClientID, "oidc-cli-client-id", "", "public client ID that zdps login uses (device authorization grant); served at GET "+dps.OIDCConfigPath)
	f.StringSliceVar(&c.CLIScopes, "oidc-cli-scopes", []string{"openid", "email", "profile", "offline_access"}, "scopes zdps login requests (add the provider's scope for the API audience, e.g. api://zdps/.default on Entra ID)")
}

// sso is OIDC as serve wires it; its zero value (nil) is OIDC off.
type sso struct {
	cfg    oidcConfig
	web    *oidcauth.Web
	bearer *oidcauth.Bearer
}

// newSSO discovers the issuer when one is configured.
func newSSO(ctx context.Context, c oidcConfig, hostName string, log *slog.Logger) (*sso, error) {
	if c.Issuer == "" {
		for name, v := range map[string]string{"--oidc-client-id": c.ClientID, "--oidc-audience": c.Audience, "--oidc-cli-client-id": c.CLIClientID} {
			if v != "" {
				return nil, fmt.Errorf("%s needs --oidc-issuer", name)
			}
		}
		return nil, nil
	}
	roles := map[string]string{}
	for _, m := range c.Roles {
		v, role, err := oidcauth.ParseRoleMapping(m)
		if err != nil {
			return nil, fmt.Errorf("--oidc-role: %w", err)
		}
		if prev, ok := roles[v]; ok && prev != role {
			return nil, fmt.Errorf("--oidc-role: %q is mapped to both %s and %s; map it once (admin includes the others)", v, prev, role)
		}
		roles[v] = role
	}
	if c.CLIClientID != "" && c.Audience == "" {
		return nil, fmt.Errorf("--oidc-cli-client-id needs --oidc-audience: the CLI's tokens are checked against it")
	}
	secret := ""
	if c.ClientSecretFile != "" {
		b, err := os.ReadFile(c.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--oidc-ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--oidc-ca-file %s holds no PEM certificate", c.CAFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	redirect := c.RedirectURL
	if redirect == "" && c.ClientID != "" {
		redirect = "https://" + hostName + "/console/sso/callback"
	}
	p, err := oidcauth.New(ctx, oidcauth.Config{
		Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: secret, RedirectURL: redirect,
		Audience: c.Audience, RoleClaim: c.RoleClaim, Roles: roles, Logger: log,
		HTTPClient: &http.Client{Transport: tr, Timeout: oidcauth.DiscoveryTimeout},
	})
	if err != nil {
		return nil, err
	}
	s := &sso{cfg: c}
	if c.ClientID != "" {
		if s.web, err = p.Web(); err != nil {
			return nil, err
		}
	}
	if c.Audience != "" {
		if s.bearer, err = p.Bearer(); err != nil {
			return nil, err
		}
	}
	log.Info("oidc enabled", "issuer", c.Issuer, "console_client", c.ClientID, "redirect_url", redirect,
		"audience", c.Audience, "role_claim", c.RoleClaim, "roles", len(roles), "cli_client", c.CLIClientID)
	return s, nil
}

// consoleSSO is the console's single sign-on port (console.SSO, the
// seam between the console and OIDC), spelled here so that this file
// needs nothing of the console.
type consoleSSO interface {
	Begin(w http.ResponseWriter, r *http.Request)
	Finish(w http.ResponseWriter, r *http.Request) (principal.Principal, error)
}

// Web is the console's sign-in, nil (SSO off) without a console client.
func (s *sso) Web() consoleSSO {
	if s == nil || s.web == nil {
		return nil
	}
	return s.web
}

// Bearer is the service API's bearer check, nil (no bearer tokens)
// without an audience.
func (s *sso) Bearer() api.BearerVerifier {
	if s == nil || s.bearer == nil {
		return nil
	}
	return s.bearer
}

// Routes adds GET /auth/oidc, which tells `zdps login` where to sign in;
// without OIDC the route does not exist (404).
func (s *sso) Routes(r chi.Router) {
	if s == nil {
		return
	}
	body, _ := json.Marshal(dps.OIDCConfig{Issuer: s.cfg.Issuer, ClientID: s.cfg.CLIClientID, Audience: s.cfg.Audience, Scopes: s.cfg.CLIScopes})
	r.Get(dps.OIDCConfigPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	})
}
