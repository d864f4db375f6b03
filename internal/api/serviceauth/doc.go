// Package serviceauth finds who sends a service API request: a shared
// access signature of a stored policy, or an OIDC bearer token checked by
// a BearerVerifier, either one as a principal.Principal. It exists apart
// from internal/api so that the one check every management route (and
// internal/opsapi's, through the service API) relies on reads in one
// place, with nothing of routing or answers around it.
//
// Security contract: every refusal wraps ErrUnauthorized (a bearer
// token's, ErrBearerUnauthorized) with a reason written here, never a part
// of the token, so the reason may be logged; a SAS must name the
// Authenticator's host, a stored policy, be signed with its primary or
// secondary key (compared in constant time by pkg/sas) and be unexpired
// within TokenSkew.
package serviceauth
