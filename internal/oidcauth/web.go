package oidcauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/zdps/zdps/internal/principal"
)

// StateCookie holds a sign-in in progress: state, nonce and PKCE
// verifier. The __Host- prefix makes browsers refuse it unless it is
// Secure, for the whole host and set by the host itself, so a sibling
// subdomain cannot plant one.
const StateCookie = "__Host-zdps-oidc"

// SignInTimeout is how long a sign-in may take at the provider.
const SignInTimeout = 10 * time.Minute

// Web is the console's single sign-on (console.SSO).
type Web struct {
	p        *Provider
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// Web is the console sign-in; it needs Config.ClientID and RedirectURL.
func (p *Provider) Web() (*Web, error) {
	if p.cfg.ClientID == "" || p.cfg.RedirectURL == "" {
		return nil, errors.New("oidc: console sign-in needs a client ID (--oidc-client-id) and a redirect URL")
	}
	scopes := p.cfg.Scopes
	if scopes == nil {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	return &Web{
		p: p,
		oauth: oauth2.Config{
			ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret,
			Endpoint: p.op.Endpoint(), RedirectURL: p.cfg.RedirectURL, Scopes: scopes,
		},
		verifier: p.verifier(p.cfg.ClientID),
	}, nil
}

func random() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Begin starts a sign-in: it keeps a fresh state, nonce and PKCE
// verifier in StateCookie and redirects the browser to the provider.
func (w *Web) Begin(rw http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	http.SetCookie(rw, &http.Cookie{
		Name: StateCookie, Value: state + "." + nonce + "." + verifier, Path: "/",
		MaxAge: int(SignInTimeout / time.Second), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	rw.Header().Set("Cache-Control", "no-store")
	http.Redirect(rw, r, w.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// Finish completes the provider's redirect back: the state must match
// the cookie's, the code is exchanged with the PKCE verifier, and the ID
// token must verify (signature, issuer, audience, expiry) and carry the
// cookie's nonce. It returns the user with the rights the role claim
// maps to, and ErrNoRights when that is none. It clears StateCookie (a
// header) and writes no status or body, so the caller answers.
func (w *Web) Finish(rw http.ResponseWriter, r *http.Request) (principal.Principal, error) {
	http.SetCookie(rw, &http.Cookie{Name: StateCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	p, err := w.finish(r)
	if err != nil {
		w.p.log.InfoContext(r.Context(), "oidc sign-in refused", "reason", err)
	}
	return p, err
}

func (w *Web) finish(r *http.Request) (principal.Principal, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return principal.Principal{}, fmt.Errorf("%w: the provider answered %s: %s", ErrSignIn, printable(e, 64), printable(q.Get("error_description"), 200))
	}
	c, err := r.Cookie(StateCookie)
	if err != nil {
		return principal.Principal{}, fmt.Errorf("%w: no sign-in is in progress in this browser (it takes at most %s, and needs cookies); start again", ErrSignIn, SignInTimeout)
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return principal.Principal{}, fmt.Errorf("%w: the sign-in cookie is malformed; start again", ErrSignIn)
	}
	state, nonce, verifier := parts[0], parts[1], parts[2]
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		return principal.Principal{}, fmt.Errorf("%w: the state does not match this browser's sign-in (another tab may have started one); start again", ErrSignIn)
	}
	code := q.Get("code")
	if code == "" {
		return principal.Principal{}, fmt.Errorf("%w: the provider sent no authorization code", ErrSignIn)
	}
	ctx := w.p.ctx(r.Context())
	tok, err := w.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return principal.Principal{}, fmt.Errorf("%w: the provider refused the authorization code: %s %s", ErrSignIn, printable(re.ErrorCode, 64), printable(re.ErrorDescription, 200))
		}
		return principal.Principal{}, fmt.Errorf("%w: exchanging the authorization code: %v", ErrSignIn, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return principal.Principal{}, fmt.Errorf("%w: the provider returned no ID token (is the openid scope allowed for client %s?)", ErrSignIn, w.oauth.ClientID)
	}
	idt, err := w.verifier.Verify(ctx, raw)
	if err != nil {
		return principal.Principal{}, fmt.Errorf("%w: ID token: %s", ErrSignIn, reason(err, w.p.cfg.Issuer, w.oauth.ClientID))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return principal.Principal{}, fmt.Errorf("%w: the ID token's nonce does not match this sign-in", ErrSignIn)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return principal.Principal{}, fmt.Errorf("%w: ID token claims are not a JSON object", ErrSignIn)
	}
	if azp, _ := claims["azp"].(string); len(idt.Audience) > 1 && azp != w.oauth.ClientID {
		// OpenID Connect Core 3.1.3.7: with several audiences, the
		// authorized party must be this client.
		return principal.Principal{}, fmt.Errorf("%w: the ID token was issued to another client (azp %q)", ErrSignIn, printable(azp, 64))
	}
	if len(w.p.mapper.values(claims)) == 0 && w.p.op.UserInfoEndpoint() != "" {
		// Providers often leave groups out of the ID token (size limits)
		// and answer them at userinfo.
		if info, err := w.p.op.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil && info.Subject == idt.Subject {
			var more map[string]any
			if info.Claims(&more) == nil {
				for k, v := range more {
					if _, ok := claims[k]; !ok {
						claims[k] = v
					}
				}
			}
		}
	}
	p := user(claims)
	if p.Name == "" {
		return principal.Principal{}, fmt.Errorf("%w: the ID token names no subject", ErrSignIn)
	}
	var roles []string
	p.Rights, roles = w.p.mapper.rights(claims)
	if len(roles) == 0 {
		return principal.Principal{}, fmt.Errorf("%w: %s signed in, but no value of the %q claim (%s) is mapped to a zdps role; an administrator maps one with --oidc-role VALUE=ROLE",
			ErrNoRights, p.Name, w.p.mapper.claim, printable(strings.Join(w.p.mapper.values(claims), ", "), 200))
	}
	return p, nil
}

// printable bounds a value from the provider and drops control
// characters before it reaches a log or a page.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max] + "…"
	}
	if s == "" {
		return "(none)"
	}
	return s
}
