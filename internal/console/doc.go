// Package console is the operator web console zdps serves at /console on
// its HTTPS listener: server-rendered pages (html/template, every asset
// embedded, htmx as progressive enhancement) over the same management use
// cases the service API calls (internal/manage, through the small
// interfaces of Config), so a change made in the console is the same
// change, with the same checks and the same audit event, as one made
// through the API.
//
// Sign-in: a session is started from a one-time sign-in link that
// `zdps console link` asks for with a service SAS (POST /console/links),
// or, when Config.SSO is set, by a single sign-on provider. Sessions are
// stored in the store (bucket console-sessions, keyed by the SHA-256 of
// the cookie value, so a stolen store holds no usable cookie and every
// replica knows every session), with an idle and an absolute expiry.
//
// Security contract:
//   - every POST carries the session's CSRF token (compared in constant
//     time) and, when the browser sends one, an Origin naming this host;
//   - each action needs the same right as the service API route that does
//     the same thing (internal/api routes.go); a page shows no button the
//     principal may not use, and the POST is refused 403 anyway;
//   - writes carry If-Match with the ETag the form was rendered from, so a
//     stale edit is refused with a conflict message, never applied;
//   - no page, error or log shows a key: keys appear only on an explicit
//     reveal, which is recorded in the audit trail like the API's read of
//     keys.
package console
