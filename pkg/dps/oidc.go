package dps

// OIDCConfigPath is zdps's unauthenticated route that tells `zdps login`
// how to sign in: it answers OIDCConfig, or 404 when OIDC is off.
const OIDCConfigPath = "/auth/oidc"

// OIDCConfig is the answer of GET /auth/oidc: where the CLI signs in
// (the device authorization grant at the issuer) and what it asks for.
// Nothing in it is secret.
type OIDCConfig struct {
	Issuer string `json:"issuer"`
	// ClientID is the CLI's public client at the issuer ("" when the
	// server names none: zdps login is then unavailable).
	ClientID string `json:"clientId"`
	// Audience is the aud the service API requires of access tokens.
	Audience string `json:"audience"`
	// Scopes the CLI requests (offline_access for a refresh token, and
	// whatever the provider needs to issue a token for Audience).
	Scopes []string `json:"scopes"`
}
