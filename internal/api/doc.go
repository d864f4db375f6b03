// Package api serves zdps over HTTPS: the service (management) API of the
// Azure IoT Hub DPS, with zdps's own resources (linked hubs, shared access
// policies, instance settings). Its routes (Routes) and the middleware
// every route runs under (NewRouter) are composed with the device API's
// on one root router by cmd/zdps; it is handed the management use cases
// it translates (UseCases), the CA and the CRL, and builds none of them.
//
// What it owns: routing (paths matched case-insensitively, percent-encoded
// IDs decoded, api-version checked), authentication and authorisation of
// the service API, request limits, the DPS error format and the one
// mapping from errors to HTTP statuses and DPS error codes, and the access
// and audit logs.
//
// Security contract:
//   - Every service route requires a shared access signature
//     (`Authorization: SharedAccessSignature sr=<host>&sig=...&se=...&skn=<policy>`)
//     signed with the primary or secondary key of a stored policy, unexpired
//     (within Config.TokenSkew), for this host, and a policy holding the
//     route's right. The rights of every route are one table, routeRights,
//     that a test checks against the router; a route without a declared
//     right cannot be registered (New fails).
//   - With Config.Bearer set (OIDC), `Authorization: Bearer <JWT>` is
//     accepted too: the verifier checks signature, issuer, audience and
//     expiry and maps the user's claims to rights. Both checks produce a
//     principal.Principal; authorization asks only HasRight, and the audit
//     trail names p.Actor() (policy:NAME or user:NAME). A bad token is 401
//     with `WWW-Authenticate: Bearer error="invalid_token"`, a missing
//     right 403, both in the DPS error format.
//   - Request bodies are decoded only by pkg/enrollment's strict decoders,
//     so read-only fields (etag, timestamps, registrationState) are never
//     taken from a request and unknown fields are refused.
//   - Keys never leave in GET, PUT or query answers (Redacted); only the
//     POST .../attestationmechanism and POST /policies/{keyName}/keys calls
//     return them, and both need a write-level right.
//   - Neither the Authorization header nor any key, body or other header is
//     ever logged. Server faults answer a generic message; details go only
//     to the log.
//   - A request refused for bad input changes nothing in the store.
//   - A request the client broke off (a body cut short, badly chunked or
//     stalled past the server's ReadTimeout, a client gone before the
//     answer) is its fault: 400/400004 with Connection: close, logged at
//     INFO and rate-limited (internal/ratelog), never a 5xx or an ERROR.
package api
