// Package oidcauth signs operators in through an OpenID Connect provider
// (Keycloak, Entra ID, Dex, ...) and maps what the provider says about
// them to the DPS rights of zdps.
//
// New discovers the issuer once, at start, and fails with a clear error
// when it does not answer; after that only the configured issuer's
// endpoints (its JWKS, token and userinfo endpoints) are ever contacted.
//
//   - Web is the console's single sign-on: the authorization code flow
//     with PKCE (S256), state and nonce kept in a short-lived Secure,
//     HttpOnly cookie, the ID token verified (signature, issuer, audience
//     = client ID, expiry, nonce).
//   - Bearer verifies JWT access tokens presented to the service API
//     against the issuer's JWKS (signature, issuer, audience, expiry).
//
// Both map the role claim (default "groups") through Config.Roles to one
// of the role presets (Presets: viewer, enrollment-manager, admin) and
// return a principal.Principal of kind user, named by the email claim,
// else the subject. Refusals carry reasons written here: no part of a
// token is ever logged or answered.
package oidcauth
