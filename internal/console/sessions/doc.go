// Package sessions keeps the web console's sign-ins in the store: the
// sessions (bucket console-sessions) and the one-time sign-in links
// (bucket console-links), each keyed by the SHA-256 of its token, so a
// stolen store holds no usable cookie or link and every replica knows
// every session. It also holds the checks every console POST passes (the
// CSRF token, the Origin). It exists apart from internal/console so that
// the pages, which only ask who is signed in, do not carry the token and
// expiry rules; it renders nothing.
package sessions
