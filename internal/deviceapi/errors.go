package deviceapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

var (
	// errScopeNotFound: the path's ID scope is not this instance's.
	errScopeNotFound = errors.New("deviceapi: unknown ID scope")
	// errTooLarge: the body exceeds Config.MaxBodyBytes.
	errTooLarge = errors.New("deviceapi: request body too large")
)

const (
	msgUnauthorized = "Unauthorized: the device could not be authenticated for this registration ID."
	msgInternal     = "Internal server error; the trackingId identifies it in the server log."
	msgUnavailable  = "The service is unavailable; retry later."
	msgThrottled    = "Too many requests; retry after the Retry-After interval."
)

// classify is the one mapping of the device API from errors to an HTTP
// status, a DPS errorCode and the message the device sees. Client faults
// are 4xx below 429 (devices give up on them); throttling is 429 and
// server faults 5xx (devices retry both). Unauthorized answers never say
// why: the reason is for the log only.
func classify(err error) (status, code int, msg string) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, dps.CodeTooLarge, "The request body is too large."
	case errors.Is(err, provisioning.ErrUnauthorized):
		return http.StatusUnauthorized, dps.CodeUnauthorized, msgUnauthorized
	case errors.Is(err, errScopeNotFound):
		return http.StatusNotFound, dps.CodeNotFound, "No provisioning service with this ID scope."
	case errors.Is(err, provisioning.ErrNotFound):
		return http.StatusNotFound, dps.CodeNotFound, "Not found."
	case errors.Is(err, provisioning.ErrInvalid), errors.Is(err, ErrBadRequest), errors.Is(err, enrollment.ErrInvalid):
		return http.StatusBadRequest, dps.CodeBadArgument, err.Error()
	case errors.Is(err, provisioning.ErrThrottled):
		return http.StatusTooManyRequests, dps.CodeThrottled, msgThrottled
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrBusy), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, dps.CodeUnavailable, msgUnavailable
	}
	return http.StatusInternalServerError, dps.CodeInternal, msgInternal
}
