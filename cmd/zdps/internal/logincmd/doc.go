// Package logincmd is `zdps login` and `zdps logout`: signing in to a
// zdps server's OIDC provider with the OAuth 2.0 device authorization
// grant (RFC 8628), keeping the token (with its refresh token) in a 0600
// file that the other commands then use (cmdutil.Globals.Client), and
// removing it.
package logincmd
