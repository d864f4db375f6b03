// Package client is the Go client of the zdps service (management) API, the
// Azure IoT Hub DPS service API plus zdps's own resources (linked hubs,
// shared access policies, instance settings). The zdps CLI is built on it.
//
// A Client is created from an Azure-format connection string
// (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...). It signs every
// request with a SharedAccessSignature token for that policy; the token is
// cached and renewed shortly before it expires, so a busy client does not
// compute one HMAC per call. Every method takes a context first and is safe
// for concurrent use.
//
// Errors from the service are *APIError values. Test them with errors.Is
// against ErrNotFound, ErrConflict, ErrPreconditionFailed and
// ErrUnauthorized, and with IsTransient to decide whether a retry can help
// (network failures, 429, 5xx).
//
// Security contract: the policy key never leaves the process; only derived,
// time-limited tokens are sent, and only over TLS verified against
// Config.RootCAs (or the system roots). Error values never carry the key or
// the token.
package client
