package api

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/pkg/dps"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
)

// RequestID is the ID of the request being served: the trackingId of its
// errors and the x-ms-request-id header of its answer.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// policyName is the shared access policy that authenticated the request,
// "" for a user.
func policyName(ctx context.Context) string {
	if p, ok := principal.From(ctx); ok && p.Kind == principal.KindPolicy {
		return p.Name
	}
	return ""
}

// requestID gives every request a fresh random ID. An ID sent by the
// client is not reused: it would let a client forge or collide log
// correlation.
func (a *API) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [16]byte
		if _, err := io.ReadFull(a.rand, b[:]); err != nil {
			// A broken random source must not take the server down for a
			// correlation ID; the time keeps IDs distinct enough.
			copy(b[:], fmt.Sprintf("%016x", a.now().UnixNano()))
		}
		id := hex.EncodeToString(b[:])
		w.Header().Set("x-ms-request-id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// accessLog logs one line per request with the route pattern (not the
// path, which holds IDs of every caller's choosing) and never a header or
// a body.
func (a *API) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			route := ""
			if rctx := chi.RouteContext(r.Context()); rctx != nil {
				route = rctx.RoutePattern()
			}
			a.log.InfoContext(r.Context(), "request",
				"request_id", RequestID(r.Context()),
				"method", r.Method,
				"route", route,
				"status", status,
				"bytes", ww.BytesWritten(),
				"duration", a.now().Sub(start))
		}()
		next.ServeHTTP(ww, r)
	})
}

// recoverer turns a panic into a 500 in the DPS format, so that a fault is
// never mistaken for a client error and clients retry (docs/protocol.md#status-codes-and-retries).
func (a *API) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec) // the server's own signal to drop the connection
			}
			a.log.ErrorContext(r.Context(), "panic", "request_id", RequestID(r.Context()), "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
				return // the answer has started; nothing sensible can follow
			}
			a.writeError(w, r, fmt.Errorf("panic: %v", rec))
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds every request body. A declared length over the limit is
// refused before reading; otherwise reads fail at the limit with
// *http.MaxBytesError, which classify maps to 413.
func (a *API) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > a.cfg.MaxBodyBytes {
			a.writeError(w, r, errTooLarge)
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// RequireAPIVersion refuses requests whose api-version query parameter is
// not one of dps.APIVersions. Every service route has it; routes added through
// Mount should use it too.
func (a *API) RequireAPIVersion(next http.Handler) http.Handler {
	return a.requireAPIVersion(next)
}

func (a *API) requireAPIVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("api-version")
		if !dps.SupportedAPIVersion(v) {
			a.writeError(w, r, fmt.Errorf("%w: api-version %q is not supported; use one of %s", errBadRequest, v, strings.Join(dps.APIVersions, ", ")))
			return
		}
		next.ServeHTTP(w, r)
	})
}
