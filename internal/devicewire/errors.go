package devicewire

import (
	"context"
	"errors"
	"net/http"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

var (
	// ErrScopeNotFound: the request's ID scope is not this instance's.
	ErrScopeNotFound = errors.New("devicewire: unknown ID scope")
	// ErrTooLarge: the request exceeds the transport's size limit.
	ErrTooLarge = errors.New("devicewire: request body too large")
)

// Messages a device reads; they never say why a device was refused.
const (
	MsgUnauthorized = "Unauthorized: the device could not be authenticated for this registration ID."
	MsgInternal     = "Internal server error; the trackingId identifies it in the server log."
	MsgUnavailable  = "The service is unavailable; retry later."
	MsgThrottled    = "Too many requests; retry after the Retry-After interval."
)

// Classify is the one mapping of the device API from errors to an HTTP
// status, a DPS errorCode and the message the device sees, for every
// transport (MQTT carries the status in its response topic). Client
// faults are 4xx below 429 (devices give up on them); throttling is 429
// and server faults 5xx (devices retry both). Unauthorized answers never
// say why: the reason is for the log only.
func Classify(err error) (status, code int, msg string) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, dps.CodeTooLarge, "The request body is too large."
	case errors.Is(err, port.ErrUnauthorized):
		return http.StatusUnauthorized, dps.CodeUnauthorized, MsgUnauthorized
	case errors.Is(err, ErrScopeNotFound):
		return http.StatusNotFound, dps.CodeNotFound, "No provisioning service with this ID scope."
	case errors.Is(err, port.ErrNotFound):
		return http.StatusNotFound, dps.CodeNotFound, "Not found."
	case errors.Is(err, port.ErrInvalid), errors.Is(err, ErrBadRequest), errors.Is(err, enrollment.ErrInvalid):
		return http.StatusBadRequest, dps.CodeBadArgument, err.Error()
	case errors.Is(err, port.ErrThrottled):
		return http.StatusTooManyRequests, dps.CodeThrottled, MsgThrottled
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrBusy), errors.Is(err, port.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, dps.CodeUnavailable, MsgUnavailable
	}
	return http.StatusInternalServerError, dps.CodeInternal, MsgInternal
}
