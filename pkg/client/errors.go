package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/zdps/zdps/pkg/dps"
)

// Sentinel errors matched by *APIError through errors.Is.
var (
	// ErrNotFound: the service answered 404.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the service answered 409 (the item already exists).
	ErrConflict = errors.New("already exists")
	// ErrPreconditionFailed: the service answered 412 (ETag mismatch).
	ErrPreconditionFailed = errors.New("precondition failed (etag mismatch)")
	// ErrUnauthorized: the service answered 401 or 403.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrBackupUnsupported: Backup on a server whose store is not a bbolt
	// file; a PostgreSQL store is backed up with pg_dump.
	ErrBackupUnsupported = errors.New("the server's store cannot be backed up through the service API")
)

// APIError is an error answer of the service, in the DPS error format.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// ErrorCode is the 6-digit DPS code (e.g. 404201), 0 when the body had
	// none.
	ErrorCode int
	// TrackingID identifies the request in the server's logs.
	TrackingID string
	// Message is the server's explanation, or the HTTP status text.
	Message string
	// RetryAfter is the server's Retry-After hint, 0 when absent.
	RetryAfter time.Duration
}

// Error is one line, fit for a CLI: "404 not found (404201): ...".
func (e *APIError) Error() string {
	s := fmt.Sprintf("service answered %d", e.StatusCode)
	if e.ErrorCode != 0 {
		s += fmt.Sprintf(" (code %d)", e.ErrorCode)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.TrackingID != "" {
		s += " [tracking id " + e.TrackingID + "]"
	}
	return s
}

// Is maps the status to the package sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrPreconditionFailed:
		return e.StatusCode == http.StatusPreconditionFailed
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrBackupUnsupported:
		return e.StatusCode == http.StatusBadRequest && e.ErrorCode == dps.CodeBackupUnsupported
	}
	return false
}

// IsTransient reports whether retrying the call that returned err may
// succeed: a network failure, 429 (throttled) or any 5xx. It is false for
// nil, for other API errors and for a cancelled or expired context (the
// caller gave up; retrying would not honour that).
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if e, ok := errors.AsType[*APIError](err); ok {
		return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		// The transport failed: refused, reset, closed mid-answer, timeout.
		// TLS verification failures are url.Errors too but never heal.
		return !isTLSVerification(err)
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, errTruncated)
}

// RetryAfter returns the server's Retry-After hint carried by err, 0 when
// there is none.
func RetryAfter(err error) time.Duration {
	if e, ok := errors.AsType[*APIError](err); ok {
		return e.RetryAfter
	}
	return 0
}
