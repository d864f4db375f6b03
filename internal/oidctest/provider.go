package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/zdps/zdps/internal/testpki"
)

// Paths of the provider's own pages (the OP serves the protocol
// endpoints under the issuer: /.well-known/openid-configuration,
// /authorize, /oauth/token, /device_authorization, /keys, /userinfo).
const (
	loginPath  = "/login"
	devicePath = "/device"
)

// User is an account of the provider.
type User struct {
	ID, Username, Password, Email string
	// Groups are put into the "groups" claim of ID and access tokens.
	Groups []string
}

// Client is an OAuth client registered at the provider.
type Client struct {
	ID string
	// Secret makes a confidential web client (authorization code with
	// PKCE, client_secret_basic); empty makes a public native client
	// (device authorization grant).
	Secret       string
	RedirectURIs []string
}

// Config configures Start.
type Config struct {
	// Audience is added to the audience of every token (the API's
	// audience, "zdps"), besides the client's ID.
	Audience string
	Users    []User
	Clients  []Client
	// AccessTokenLifetime is that of access tokens; 5 minutes when 0.
	AccessTokenLifetime time.Duration
	// DevicePollInterval is the device grant's poll interval; 1 s when 0.
	DevicePollInterval time.Duration
	// GroupsAtUserinfoOnly leaves the groups out of ID tokens (as
	// providers do when a user has too many); userinfo still answers them.
	GroupsAtUserinfoOnly bool
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is https://127.0.0.1:PORT.
	Issuer string
	// CAFile is a PEM file with the CA the provider's TLS certificate
	// chains to; RootCAs holds the same CA.
	CAFile  string
	RootCAs *x509.CertPool

	st  *storage
	srv *httptest.Server
}

// Start runs a provider until the test ends.
func Start(t testing.TB, cfg Config) *Provider {
	t.Helper()
	ca := testpki.Issue(t, "oidctest CA", true, nil)
	leaf := testpki.Issue(t, "127.0.0.1", false, ca, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.DNSNames = []string{"localhost"}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	pair, err := tls.X509KeyPair([]byte(leaf.PEM()+ca.PEM()), []byte(leaf.KeyPEM(t)))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "oidc-ca.pem")
	if err := os.WriteFile(caFile, []byte(ca.PEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	st := &storage{
		audience: cfg.Audience, atLifetime: cfg.AccessTokenLifetime, groupsAtUserinfoOnly: cfg.GroupsAtUserinfoOnly, key: key, keyID: randomID()[:8],
		clients: map[string]*client{}, users: map[string]*User{},
		requests: map[string]*authRequest{}, codes: map[string]string{},
		tokens: map[string]*token{}, refresh: map[string]*token{},
		devices: map[string]*op.DeviceAuthorizationState{}, userCode: map[string]string{}, shown: map[string]bool{},
	}
	if st.atLifetime == 0 {
		st.atLifetime = 5 * time.Minute
	}
	for _, u := range cfg.Users {
		st.users[u.ID] = &u
	}
	for _, c := range cfg.Clients {
		st.clients[c.ID] = &client{id: c.ID, secret: c.Secret, redirectURIs: c.RedirectURIs, native: c.Secret == ""}
	}
	poll := cfg.DevicePollInterval
	if poll == 0 {
		poll = time.Second
	}

	srv := httptest.NewUnstartedServer(nil)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	issuer := "https://" + srv.Listener.Addr().String()
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		t.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             cryptoKey,
		CodeMethodS256:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime: 5 * time.Minute, PollInterval: poll,
			UserFormPath: devicePath, UserCode: op.UserCodeBase20,
		},
	}, st, op.StaticIssuer(issuer), op.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{Issuer: issuer, CAFile: caFile, RootCAs: pool, st: st, srv: srv}
	mux := http.NewServeMux()
	callback := op.AuthCallbackURL(provider)
	mux.HandleFunc(loginPath, func(w http.ResponseWriter, r *http.Request) { p.login(w, r, callback) })
	mux.HandleFunc(devicePath, p.device)
	mux.Handle("/", provider)
	srv.Config.Handler = mux
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return p
}

var pages = template.Must(template.New("").Parse(`
{{define "login"}}<!DOCTYPE html><html><head><title>Sign in</title></head><body>
<form method="POST" action="/login"><input type="hidden" name="id" value="{{.ID}}">
<label>Username <input id="username" name="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<p class="error">{{.Error}}</p><button id="submit" type="submit">Sign in</button></form></body></html>{{end}}
{{define "device"}}<!DOCTYPE html><html><head><title>Device sign-in</title></head><body>
<form method="POST" action="/device">
<label>Code <input id="user_code" name="user_code" value="{{.Code}}"></label>
<label>Username <input id="username" name="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<p class="error">{{.Error}}</p>
<button name="action" value="allow" type="submit">Allow</button>
<button name="action" value="deny" type="submit">Deny</button></form></body></html>{{end}}`))

// login is the sign-in form of the authorization code flow: the OP sends
// the browser here with the pending request's ID; a right username and
// password send it back to the OP, which redirects to the client.
func (p *Provider) login(w http.ResponseWriter, r *http.Request, callback func(context.Context, string) string) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		_ = pages.ExecuteTemplate(w, "login", map[string]string{"ID": r.Form.Get("authRequestID")})
		return
	}
	id := r.PostForm.Get("id")
	if err := p.st.signIn(id, r.PostForm.Get("username"), r.PostForm.Get("password")); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_ = pages.ExecuteTemplate(w, "login", map[string]string{"ID": id, "Error": err.Error()})
		return
	}
	http.Redirect(w, r, callback(op.ContextWithIssuer(r.Context(), p.Issuer), id), http.StatusFound)
}

// device is the verification page of the device authorization grant.
func (p *Provider) device(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		_ = pages.ExecuteTemplate(w, "device", map[string]string{"Code": r.Form.Get("user_code")})
		return
	}
	f := r.PostForm
	if err := p.st.approveDevice(f.Get("user_code"), f.Get("username"), f.Get("password"), f.Get("action") == "deny"); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_ = pages.ExecuteTemplate(w, "device", map[string]string{"Code": f.Get("user_code"), "Error": err.Error()})
		return
	}
	_, _ = io.WriteString(w, "Device authorization complete; return to your device.")
}

// HTTPClient trusts the provider's CA and the CAs of extraCAPEM (the
// relying party's) and keeps cookies, as a browser would.
func (p *Provider) HTTPClient(extraCAPEM ...[]byte) *http.Client {
	pool := p.RootCAs.Clone()
	for _, b := range extraCAPEM {
		pool.AppendCertsFromPEM(b)
	}
	jar, _ := cookiejar.New(nil)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// Login signs a user in the way a browser would: it GETs start (the
// relying party's sign-in URL, which redirects to the provider), fills
// the provider's sign-in form with username and password, and follows
// the redirects back to the relying party, returning its last answer.
// c must keep cookies (HTTPClient).
func (p *Provider) Login(ctx context.Context, c *http.Client, start, username, password string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := hiddenID.FindSubmatch(body)
	if m == nil || !strings.HasPrefix(resp.Request.URL.String(), p.Issuer+loginPath) {
		return nil, fmt.Errorf("oidctest: %s did not lead to the sign-in form (ended at %s, status %d): %.300s", start, resp.Request.URL, resp.StatusCode, body)
	}
	form := url.Values{"id": {htmlUnescape(string(m[1]))}, "username": {username}, "password": {password}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.Issuer+loginPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#43;", "+", "&#34;", `"`, "&#39;", "'", "&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(s)
}

// ApproveDevice approves (or, with deny, refuses) a device authorization
// at the verification page, as the user would in a browser.
func (p *Provider) ApproveDevice(ctx context.Context, userCode, username, password string, deny bool) error {
	action := "allow"
	if deny {
		action = "deny"
	}
	form := url.Values{"user_code": {userCode}, "username": {username}, "password": {password}, "action": {action}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Issuer+devicePath, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("oidctest: approving %s: %d: %.300s", userCode, resp.StatusCode, b)
	}
	return nil
}

// NextUserCode waits for a device authorization to start and returns
// its user code, as the user would read it from the device's screen.
func (p *Provider) NextUserCode(ctx context.Context) (string, error) {
	for {
		p.st.mu.Lock()
		for code, dev := range p.st.userCode {
			if st := p.st.devices[dev]; st != nil && !st.Done && !st.Denied && !p.st.shown[code] {
				p.st.shown[code] = true
				p.st.mu.Unlock()
				return code, nil
			}
		}
		p.st.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// AddClient registers another client, for a relying party whose address
// is known only after the provider started (its redirect URI).
func (p *Provider) AddClient(c Client) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	p.st.clients[c.ID] = &client{id: c.ID, secret: c.Secret, redirectURIs: c.RedirectURIs, native: c.Secret == ""}
}

// DeviceURL is the verification page of the device grant.
func (p *Provider) DeviceURL() string { return p.Issuer + devicePath }

// MintAccessToken signs claims as a JWT with the provider's own key (the
// one its JWKS publishes), for tests of tokens refused for their claims.
// iss is set to the issuer unless claims sets it.
func (p *Provider) MintAccessToken(claims map[string]any) (string, error) {
	if _, ok := claims["iss"]; !ok {
		claims["iss"] = p.Issuer
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: p.st.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), p.st.keyID))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// UserByName returns the configured user called username.
func (p *Provider) UserByName(username string) (User, error) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	for _, u := range p.st.users {
		if u.Username == username {
			return *u, nil
		}
	}
	return User{}, errors.New("oidctest: no such user")
}
