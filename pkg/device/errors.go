package device

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Sentinel errors. Errors returned by Register wrap one of them or carry
// an *Error whose Is method matches them; test with errors.Is.
var (
	// ErrInvalidConfig: Config is incomplete or contradictory; nothing
	// was sent.
	ErrInvalidConfig = errors.New("device: invalid config")
	// ErrUnauthorized: the service answered 401 (wrong key or
	// certificate, expired token, no enrollment for this device).
	ErrUnauthorized = errors.New("device: unauthorized")
	// ErrNotFound: the service answered 404 (unknown ID scope,
	// operation or registration).
	ErrNotFound = errors.New("device: not found")
	// ErrBadRequest: the service answered 400 (bad registration ID,
	// payload, CSR or api-version).
	ErrBadRequest = errors.New("device: bad request")
	// ErrDisabled: the registration ended with status "disabled" (the
	// enrollment, or its group, is disabled).
	ErrDisabled = errors.New("device: enrollment disabled")
	// ErrFailed: the registration ended with status "failed"; the *Error
	// carries the service's errorCode and message.
	ErrFailed = errors.New("device: registration failed")
	// ErrMalformedResponse: the service answered something that is not
	// the DPS protocol (not JSON, a missing operationId, an issued
	// certificate that does not parse or does not match the key).
	ErrMalformedResponse = errors.New("device: malformed response")
	// ErrGaveUp: transient failures (429, 5xx, network errors) went on
	// past Config.MaxRetries or Config.MaxWait. The error also wraps the
	// last failure.
	ErrGaveUp = errors.New("device: gave up")
)

// Error is a refusal by the service: an HTTP status other than 2xx, or a
// final registration status "failed" or "disabled" (then StatusCode is
// the HTTP status of that answer, usually 200, and Status is set).
//
// errors.Is(err, ErrUnauthorized) holds for 401, ErrNotFound for 404,
// ErrBadRequest for 400, ErrFailed and ErrDisabled for those statuses.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// ErrorCode is the DPS 6-digit error code (401002, 404201, ...),
	// 0 when the answer had none.
	ErrorCode int
	// TrackingID identifies the request in the service's log.
	TrackingID string
	// Message is the service's explanation.
	Message string
	// Status is the registration status ("failed", "disabled") when the
	// refusal was a final status rather than an HTTP error.
	Status string
	// OperationID of the registration, when known.
	OperationID string
}

func (e *Error) Error() string {
	var what string
	switch e.Status {
	case "":
		what = "device: the service answered HTTP " + strconv.Itoa(e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" {
			what += " " + t
		}
	default:
		what = "device: registration ended with status " + strconv.Quote(e.Status)
	}
	if e.ErrorCode != 0 {
		what += fmt.Sprintf(" (errorCode %d)", e.ErrorCode)
	}
	if e.Message != "" {
		what += ": " + e.Message
	}
	if e.TrackingID != "" {
		what += " [trackingId " + e.TrackingID + "]"
	}
	return what
}

// Is matches the sentinels that describe e.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrFailed:
		return e.Status == statusFailed
	case ErrDisabled:
		return e.Status == statusDisabled
	case ErrUnauthorized:
		return e.Status == "" && e.StatusCode == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == "" && e.StatusCode == http.StatusNotFound
	case ErrBadRequest:
		return e.Status == "" && e.StatusCode == http.StatusBadRequest
	}
	return false
}

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedResponse, fmt.Sprintf(format, args...))
}

// gaveUpError is ErrGaveUp with the last transient failure.
type gaveUpError struct {
	what string
	last error
}

func (e *gaveUpError) Error() string {
	return "device: gave up " + e.what + "; last: " + trimPrefix(e.last)
}

func (e *gaveUpError) Unwrap() []error { return []error{ErrGaveUp, e.last} }

// trimPrefix is err's message without the package prefix, to nest it in
// another message of this package.
func trimPrefix(err error) string {
	if err == nil {
		return "none"
	}
	return strings.TrimPrefix(err.Error(), "device: ")
}
