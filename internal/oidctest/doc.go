// Package oidctest runs a real OpenID provider in the test process: the
// OP of github.com/zitadel/oidc (pkg/op) over an in-memory storage of this
// package, served with TLS on 127.0.0.1 under a test CA.
//
// It speaks what zdps relies on, as a production provider would:
// discovery, the authorization code flow (PKCE with S256 required), the
// device authorization grant (RFC 8628) with refresh tokens, JWT access
// tokens signed with RS256 carrying a "groups" claim and the configured
// API audience, and a JWKS. Users sign in through a plain HTML form, so a
// test completes it with an http.Client and a cookie jar (Login) or
// approves a device code the same way (ApproveDevice); a browser driven
// by chromedp fills the same form.
//
// MintAccessToken signs arbitrary claims with the provider's own key, for
// tests of refusals (expired, wrong audience) whose signature is valid.
package oidctest
