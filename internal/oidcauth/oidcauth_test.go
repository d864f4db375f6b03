package oidcauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/zdps/zdps/internal/oidcauth"
	"github.com/zdps/zdps/internal/oidctest"
	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/pkg/enrollment"
)

const (
	audience  = "zdps"
	webClient = "zdps-console"
	webSecret = "console-secret"
	cliClient = "zdps-cli"
	password  = "pw-123456"
)

var users = []oidctest.User{
	{ID: "u-view", Username: "vera", Password: password, Email: "vera@example.com", Groups: []string{"staff", "dps-viewers"}},
	{ID: "u-mgr", Username: "manu", Password: password, Email: "manu@example.com", Groups: []string{"dps-managers"}},
	{ID: "u-admin", Username: "ada", Password: password, Groups: []string{"dps-admins", "dps-viewers"}},
	{ID: "u-none", Username: "nora", Password: password, Email: "nora@example.com", Groups: []string{"staff"}},
}

var roles = map[string]string{"dps-viewers": oidcauth.RoleViewer, "dps-managers": oidcauth.RoleEnrollmentManager, "dps-admins": oidcauth.RoleAdmin}

// env is a provider, a relying party serving Web at /login and /callback
// (as the console does), and the Provider under test.
type env struct {
	op      *oidctest.Provider
	rp      *httptest.Server
	rpCA    []byte
	p       *oidcauth.Provider
	web     *oidcauth.Web
	results chan result
}

type result struct {
	p   principal.Principal
	err error
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, groupsAtUserinfoOnly ...bool) *env {
	t.Helper()
	e := &env{results: make(chan result, 1)}
	e.rp = httptest.NewUnstartedServer(nil)
	rpURL := "https://" + e.rp.Listener.Addr().String()
	e.op = oidctest.Start(t, oidctest.Config{
		Audience: audience, Users: users, GroupsAtUserinfoOnly: len(groupsAtUserinfoOnly) > 0 && groupsAtUserinfoOnly[0],
		Clients: []oidctest.Client{
			{ID: webClient, Secret: webSecret, RedirectURIs: []string{rpURL + "/callback"}},
			{ID: cliClient},
		},
	})
	var err error
	e.p, err = oidcauth.New(context.Background(), oidcauth.Config{
		Issuer: e.op.Issuer, ClientID: webClient, ClientSecret: webSecret, RedirectURL: rpURL + "/callback",
		Audience: audience, Roles: roles, Logger: discard(),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.op.RootCAs}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.web, err = e.p.Web(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", e.web.Begin)
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		p, err := e.web.Finish(w, r)
		e.results <- result{p, err}
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	})
	e.rp.Config.Handler = mux
	e.rp.StartTLS()
	t.Cleanup(e.rp.Close)
	e.rpCA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.rp.Certificate().Raw})
	return e
}

// signIn runs the whole browser flow for username and returns what
// Finish returned.
func (e *env) signIn(t *testing.T, c *http.Client, username string) result {
	t.Helper()
	resp, err := e.op.Login(context.Background(), c, e.rp.URL+"/login", username, password)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case r := <-e.results:
		return r
	default:
		t.Fatalf("the flow did not reach the callback (ended at %s, status %d)", resp.Request.URL, resp.StatusCode)
	}
	return result{}
}

func TestWebSignIn(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		user, name string
		rights     []string
	}{
		{"vera", "vera@example.com", oidcauth.Presets[oidcauth.RoleViewer]},
		{"manu", "manu@example.com", oidcauth.Presets[oidcauth.RoleEnrollmentManager]},
		{"ada", "u-admin", oidcauth.Presets[oidcauth.RoleAdmin]}, // no email: the subject
	} {
		t.Run(tc.user, func(t *testing.T) {
			r := e.signIn(t, e.op.HTTPClient(e.rpCA), tc.user)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.p.Kind != principal.KindUser || r.p.Name != tc.name {
				t.Errorf("principal %+v, want user %s", r.p, tc.name)
			}
			got, want := slices.Sorted(slices.Values(r.p.Rights)), slices.Sorted(slices.Values(tc.rights))
			if !slices.Equal(got, want) {
				t.Errorf("rights %v, want %v", got, want)
			}
		})
	}
	if !slices.Contains(oidcauth.Presets[oidcauth.RoleAdmin], enrollment.RightServiceConfig) || slices.Contains(oidcauth.Presets[oidcauth.RoleEnrollmentManager], enrollment.RightServiceConfig) {
		t.Error("presets: only admin configures")
	}
}

// Groups the ID token leaves out are read at the userinfo endpoint.
func TestWebReadsGroupsFromUserinfo(t *testing.T) {
	e := newEnv(t, true)
	r := e.signIn(t, e.op.HTTPClient(e.rpCA), "manu")
	if r.err != nil || !r.p.HasRight(enrollment.RightEnrollmentWrite) {
		t.Fatalf("%+v %v", r.p, r.err)
	}
}

// A nested role claim (Keycloak's realm roles) is found by its dotted
// path; a literal claim of that name wins.
func TestNestedRoleClaim(t *testing.T) {
	op := oidctest.Start(t, oidctest.Config{Audience: audience})
	p, err := oidcauth.New(context.Background(), oidcauth.Config{
		Issuer: op.Issuer, Audience: audience, RoleClaim: "realm_access.roles", Roles: map[string]string{"dps-admin": oidcauth.RoleAdmin, "dps-view": oidcauth.RoleViewer},
		Logger: discard(), HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: op.RootCAs}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Bearer()
	exp := time.Now().Add(time.Hour).Unix()
	for _, tc := range []struct {
		claims map[string]any
		want   int
	}{
		{map[string]any{"realm_access": map[string]any{"roles": []string{"offline_access", "dps-admin"}}}, 5},
		{map[string]any{"realm_access.roles": "dps-view", "realm_access": map[string]any{"roles": []string{"dps-admin"}}}, 2},
		{map[string]any{"realm_access": map[string]any{"roles": "dps-view"}}, 2},
		{map[string]any{"realm_access": []string{"dps-admin"}}, 0},
		{map[string]any{"realm_access": map[string]any{"roles": []any{1, true, "x"}}}, 0},
	} {
		tc.claims["sub"], tc.claims["aud"], tc.claims["exp"] = "u", audience, exp
		tok, err := op.MintAccessToken(tc.claims)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := b.Verify(context.Background(), tok)
		if err != nil || len(pr.Rights) != tc.want {
			t.Errorf("%v: %v %v, want %d rights", tc.claims, pr.Rights, err, tc.want)
		}
	}
}

func TestWebRefusesUserWithoutRole(t *testing.T) {
	e := newEnv(t)
	r := e.signIn(t, e.op.HTTPClient(e.rpCA), "nora")
	if !errors.Is(r.err, oidcauth.ErrNoRights) || !strings.Contains(r.err.Error(), "nora@example.com") || !strings.Contains(r.err.Error(), "staff") {
		t.Fatalf("err = %v, want ErrNoRights naming the user and the claim's values", r.err)
	}
}

// tamper begins a sign-in, then rewrites part i (state, nonce, verifier)
// of the state cookie in the browser before completing the flow.
func TestWebRefusesTamperedSignIn(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		part int
		want string
	}{
		{"state", 0, "state does not match"},
		{"nonce", 1, "nonce does not match"},
		{"PKCE verifier", 2, "refused the authorization code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.op.HTTPClient(e.rpCA)
			c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				// Once the provider's form shows, the cookie is set: change it.
				if strings.HasPrefix(req.URL.String(), e.op.Issuer+"/login") {
					u, _ := url.Parse(e.rp.URL)
					for _, ck := range c.Jar.Cookies(u) {
						if ck.Name == oidcauth.StateCookie {
							parts := strings.Split(ck.Value, ".")
							parts[tc.part] = "x" + parts[tc.part][1:]
							if parts[tc.part] == strings.Split(ck.Value, ".")[tc.part] {
								parts[tc.part] = "y" + parts[tc.part][1:]
							}
							c.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: strings.Join(parts, "."), Path: "/", Secure: true}})
						}
					}
				}
				return nil
			}
			r := e.signIn(t, c, "vera")
			if !errors.Is(r.err, oidcauth.ErrSignIn) || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrSignIn: %s", r.err, tc.want)
			}
		})
	}
}

func TestWebRefusesCallbackWithoutSignIn(t *testing.T) {
	e := newEnv(t)
	resp, err := e.op.HTTPClient(e.rpCA).Get(e.rp.URL + "/callback?code=abc&state=def")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := <-e.results; !errors.Is(r.err, oidcauth.ErrSignIn) || !strings.Contains(r.err.Error(), "no sign-in is in progress") {
		t.Fatalf("err = %v", r.err)
	}
	resp, err = e.op.HTTPClient(e.rpCA).Get(e.rp.URL + "/callback?error=access_denied&error_description=user+cancelled")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := <-e.results; !errors.Is(r.err, oidcauth.ErrSignIn) || !strings.Contains(r.err.Error(), "access_denied: user cancelled") {
		t.Fatalf("err = %v", r.err)
	}
}

func TestBeginCookieAndPKCE(t *testing.T) {
	e := newEnv(t)
	rec := httptest.NewRecorder()
	e.web.Begin(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	if rec.Code != http.StatusFound {
		t.Fatalf("status %d", rec.Code)
	}
	ck := rec.Result().Cookies()
	if len(ck) != 1 || ck[0].Name != oidcauth.StateCookie || !ck[0].Secure || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteLaxMode || ck[0].MaxAge != 600 || ck[0].Path != "/" {
		t.Fatalf("cookie %+v", ck)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	q := loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("client_id") != webClient {
		t.Fatalf("authorization URL %s", loc)
	}
	if strings.Contains(ck[0].Value, q.Get("code_challenge")) {
		t.Error("the cookie holds the challenge, not the verifier")
	}
}

func TestDiscoveryFailureIsClear(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	issuer := srv.URL
	srv.Close()
	_, err := oidcauth.New(context.Background(), oidcauth.Config{Issuer: issuer, ClientID: "c", Roles: roles, Logger: discard()})
	if err == nil || !strings.Contains(err.Error(), "discovery of issuer "+issuer+" failed") {
		t.Fatalf("err = %v", err)
	}
	for _, cfg := range []oidcauth.Config{
		{Issuer: "http://idp.example.com", ClientID: "c", Roles: roles, Logger: discard()},
		{Issuer: "https://idp.example.com", ClientID: "c", Logger: discard()},
		{Issuer: "https://idp.example.com", ClientID: "c", Roles: map[string]string{"g": "root"}, Logger: discard()},
	} {
		if _, err := oidcauth.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "invalid config") {
			t.Errorf("%+v: err = %v", cfg, err)
		}
	}
}

// deviceToken obtains an access token for username with the device
// authorization grant, approving the code at the provider.
func deviceToken(t *testing.T, e *env, username string) *oauth2.Token {
	t.Helper()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.op.HTTPClient())
	cfg := oauth2.Config{ClientID: cliClient, Endpoint: e.p.Endpoint(), Scopes: []string{"openid", "email", "offline_access"}}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.op.ApproveDevice(ctx, da.UserCode, username, password, false); err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBearer(t *testing.T) {
	e := newEnv(t)
	b, err := e.p.Bearer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := deviceToken(t, e, "manu")
	p, err := b.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if p.Actor() != "user:manu@example.com" || !p.HasRight(enrollment.RightEnrollmentWrite) || p.HasRight(enrollment.RightServiceConfig) {
		t.Fatalf("principal %+v", p)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token with offline_access")
	}

	now := time.Now()
	valid := func() map[string]any {
		return map[string]any{"sub": "u-mgr", "aud": []string{audience}, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "groups": []string{"dps-managers"}}
	}
	mint := func(mod func(map[string]any)) string {
		c := valid()
		mod(c)
		s, err := e.op.MintAccessToken(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	forged := func() string {
		key, _ := rsa.GenerateKey(rand.Reader, 2048)
		// The provider's key ID, another key: the signature cannot verify.
		hdr, _ := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", hdr.Headers[0].KeyID))
		c := valid()
		c["iss"] = e.op.Issuer
		s, _ := jwt.Signed(signer).Claims(c).Serialize()
		return s
	}
	for ev, want := range map[bool]string{true: "mallory@example.com", false: "u-mgr"} {
		p, err := b.Verify(ctx, mint(func(c map[string]any) { c["email"], c["email_verified"] = "mallory@example.com", ev }))
		if err != nil || p.Name != want {
			t.Errorf("email_verified %v: named %q (%v), want %q", ev, p.Name, err, want)
		}
	}
	noRole, err := b.Verify(ctx, mint(func(c map[string]any) { c["groups"] = []string{"staff"} }))
	if err != nil || len(noRole.Rights) != 0 || noRole.Name != "u-mgr" {
		t.Errorf("a valid token without a mapped group: %+v, %v (want no rights, no error)", noRole, err)
	}
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"expired", mint(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), "token expired"},
		{"wrong audience", mint(func(c map[string]any) { c["aud"] = []string{"other-api"} }), `not for audience "zdps"`},
		{"other issuer", mint(func(c map[string]any) { c["iss"] = "https://evil.example.com" }), "not issued by"},
		{"forged signature", forged(), "signature does not verify"},
		{"tampered claims", tamper(tok.AccessToken), "signature does not verify"},
		{"not a JWT", "abc", "not a JWT"},
		{"garbage JWT", "a.b.c", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Verify(ctx, tc.token)
			if !errors.Is(err, oidcauth.ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want ErrInvalidToken: %s", err, tc.reason)
			}
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[len(tc.token)-20:]) {
				t.Error("the reason quotes the token")
			}
		})
	}
}

// tamper swaps the token's payload for one granting admin.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	c["groups"] = []string{"dps-admins"}
	nb, _ := json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(nb)
	return strings.Join(parts, ".")
}

// Tokens signed with keys the issuer does not publish must not make zdps
// fetch the JWKS each time: anyone can send them.
func TestForgedTokensDoNotHammerTheIssuer(t *testing.T) {
	op := oidctest.Start(t, oidctest.Config{Audience: audience})
	now := time.Now()
	p, err := oidcauth.New(context.Background(), oidcauth.Config{
		Issuer: op.Issuer, Audience: audience, Roles: roles, Logger: discard(), Now: func() time.Time { return now },
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: op.RootCAs}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Bearer()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	forge := func(kid string) string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		s, _ := jwt.Signed(signer).Claims(map[string]any{"iss": op.Issuer, "sub": "x", "aud": audience, "exp": now.Add(time.Hour).Unix()}).Serialize()
		return s
	}
	if p.KeyFetches() != 1 {
		t.Fatalf("%d fetches at start, want 1 (discovery checks the JWKS)", p.KeyFetches())
	}
	for i := range 50 {
		if _, err := b.Verify(context.Background(), forge("kid-"+string(rune('a'+i%26)))); !errors.Is(err, oidcauth.ErrInvalidToken) {
			t.Fatal(err)
		}
	}
	if p.KeyFetches() != 1 {
		t.Fatalf("%d JWKS fetches after 50 forged tokens, want 1", p.KeyFetches())
	}
	now = now.Add(oidcauth.MinKeyRefresh)
	for range 10 {
		_, _ = b.Verify(context.Background(), forge("new-kid"))
	}
	if p.KeyFetches() != 2 {
		t.Fatalf("%d JWKS fetches a refresh interval later, want 2 (keys may have rotated)", p.KeyFetches())
	}
	// A real token still verifies from the cache.
	tok, err := op.MintAccessToken(map[string]any{"sub": "x", "aud": audience, "exp": now.Add(time.Hour).Unix(), "groups": []string{"dps-viewers"}})
	if err != nil {
		t.Fatal(err)
	}
	if pr, err := b.Verify(context.Background(), tok); err != nil || !pr.HasRight(enrollment.RightEnrollmentRead) {
		t.Fatalf("%+v %v", pr, err)
	}
}
