package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/zdps/zdps/internal/api/apirequest"
	"github.com/zdps/zdps/internal/api/serviceauth"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Errors of the API layer itself. Handlers wrap them with %w and a message
// for the client; classify maps them.
var (
	// errUnauthorized and errBearerUnauthorized: the request's
	// credentials were refused (serviceauth says why, in the log only).
	errUnauthorized       = serviceauth.ErrUnauthorized
	errBearerUnauthorized = serviceauth.ErrBearerUnauthorized
	// errForbidden: authenticated, but the policy lacks the route's right.
	errForbidden = errors.New("forbidden")
	// errBadRequest: a request that is wrong in shape (malformed JSON,
	// wrong content type, bad header, unsupported query or api-version).
	errBadRequest = apirequest.ErrBadRequest
	// errTooLarge: the body exceeds Config.MaxBodyBytes.
	errTooLarge = errors.New("request body too large")
	// errRouteNotFound and errMethodNotAllowed: no such route.
	errRouteNotFound    = errors.New("no such resource")
	errMethodNotAllowed = errors.New("method not allowed")
	// errBackupUnsupported: GET /backup on a store that is not one bbolt
	// file (PostgreSQL has pg_dump).
	errBackupUnsupported = errors.New("this server's store cannot be backed up through the service API: it is not a bbolt file. " +
		"A PostgreSQL store is backed up with pg_dump, e.g. pg_dump --schema=zdps --format=custom --file=zdps.dump 'postgres://USER@HOST/DB'")
)

// Public messages of the classes whose details must stay in the log.
const (
	msgUnauthorized       = "Unauthorized: the request needs a valid, unexpired SharedAccessSignature for this host, signed with a key of a known policy."
	msgBearerUnauthorized = "Unauthorized: the bearer token is not valid here (expired, for another audience or issuer, or not signed by the identity provider); sign in again (zdps login)."
	msgInternal           = "Internal server error; the trackingId identifies it in the server log."
	msgUnavailable        = "The service is shutting down or unavailable; retry later."
)

// classify is the one mapping from errors to an HTTP status, a DPS error
// code and the message the client sees. Order matters where an error wraps
// several sentinels (a precondition failure that wraps a not-found).
func classify(err error) (status, code int, message string) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge) || errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, dps.CodeTooLarge, "The request body is too large."
	case errors.Is(err, errBearerUnauthorized):
		return http.StatusUnauthorized, dps.CodeUnauthorized, msgBearerUnauthorized
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, dps.CodeUnauthorized, msgUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, dps.CodeForbidden, err.Error()
	case errors.Is(err, errRouteNotFound):
		return http.StatusNotFound, dps.CodeRouteNotFound, err.Error()
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, dps.CodeMethodNotAllowed, err.Error()
	case errors.Is(err, errBackupUnsupported):
		return http.StatusBadRequest, dps.CodeBackupUnsupported, err.Error()
	case errors.Is(err, store.ErrPreconditionFailed):
		return http.StatusPreconditionFailed, dps.CodePreconditionFailed, err.Error()
	case errors.Is(err, enrollment.ErrInvalid),
		errors.Is(err, errBadRequest),
		errors.Is(err, manage.ErrBadRequest),
		errors.Is(err, store.ErrInvalidContinuation):
		return http.StatusBadRequest, dps.CodeBadArgument, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, dps.CodeNotFound, err.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, dps.CodeConflict, err.Error()
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrBusy):
		return http.StatusServiceUnavailable, dps.CodeUnavailable, msgUnavailable
	default:
		return http.StatusInternalServerError, dps.CodeInternal, msgInternal
	}
}

// WriteError answers err in the DPS error format with the status and code
// classify gives it. Server faults are logged with their details; the
// client sees only a generic message and the tracking ID. Exported for
// routes added through Mount.
func (a *API) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	a.writeError(w, r, err)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if cf := apirequest.AsConnectionFault(r, err); cf != nil {
		err = cf
		a.logConnectionFault(w, r, cf)
	}
	status, code, msg := classify(err)
	id := RequestID(r.Context())
	switch {
	case errors.Is(err, store.ErrBusy):
		// Transient contention, not a fault: the client retries.
		a.log.WarnContext(r.Context(), "request refused: store busy", "request_id", id, "status", status, "error", err)
	case status >= 500:
		a.log.ErrorContext(r.Context(), "request failed", "request_id", id, "status", status, "error", err)
	case status == http.StatusUnauthorized:
		// Why a token was refused helps the operator; it holds no secret
		// because reasons are written by this package, never copied from
		// the token.
		a.log.InfoContext(r.Context(), "unauthorized", "request_id", id, "reason", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("x-ms-error-code", strconv.Itoa(code))
	a.writeJSON(w, status, dps.NewErrorBody(code, id, msg, a.now()))
}

// writeJSON answers v with the content type the Node SDK needs to parse
// the body at all (docs/protocol.md#conventions).
func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here: every answer type marshals.
		a.log.Error("encode answer", "error", err)
		b = []byte(fmt.Sprintf(`{"errorCode":%d,"message":%q}`, dps.CodeInternal, msgInternal))
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// badRequest wraps err (a decoder's complaint) as a client error unless it
// already is one: the decoders read only the request, so any failure of
// theirs is the client's.
func badRequest(err error) error {
	if errors.Is(err, enrollment.ErrInvalid) || errors.Is(err, errBadRequest) {
		return err
	}
	return fmt.Errorf("%w: %w", errBadRequest, err)
}

// resourceError names the resource a store error is about, so that the
// client reads `enrollment "dev-1" does not exist` rather than the store's
// own wording. It carries data (resource and ID), hence a type.
type resourceError struct {
	resource, id string
	err          error
}

func (e *resourceError) Error() string {
	what := e.resource
	if e.id != "" {
		what += fmt.Sprintf(" %q", e.id)
	}
	switch {
	case errors.Is(e.err, store.ErrPreconditionFailed):
		return what + ": the If-Match ETag does not match the stored version"
	case errors.Is(e.err, store.ErrNotFound):
		return what + " does not exist"
	case errors.Is(e.err, store.ErrConflict):
		return what + " already exists"
	}
	return what + ": " + e.err.Error()
}

func (e *resourceError) Unwrap() error { return e.err }

// about wraps err with the resource it concerns.
func about(resource, id string, err error) error {
	if err == nil {
		return nil
	}
	return &resourceError{resource: resource, id: id, err: err}
}
