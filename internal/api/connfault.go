package api

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Connection faults are logged through ratelog: anyone can cause them.
const (
	faultLogLines    = 10
	faultLogInterval = time.Minute
)

// connectionFault is a request the client broke off: its body ended
// before its Content-Length, stalled past the server's ReadTimeout or
// could not be read, or the client closed its side before the answer
// (net/http then cancels the request). It is the client's fault: 400
// (it wraps errBadRequest) with Connection: close, as the connection's
// framing is lost. The cause, which may hold addresses, is logged at
// INFO, never answered.
type connectionFault struct {
	msg   string
	cause error
}

func (e *connectionFault) Error() string { return errBadRequest.Error() + ": " + e.msg }
func (e *connectionFault) Unwrap() error { return errBadRequest }

// bodyReadFault is the connectionFault of a failed body read.
func bodyReadFault(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &connectionFault{msg: "the request body did not arrive in time", cause: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &connectionFault{msg: "the request body ended before its Content-Length (or last chunk)", cause: err}
	}
	return &connectionFault{msg: "the request body could not be read", cause: err}
}

// asConnectionFault is err as a *connectionFault, when it is one or when
// the client left while the request ran (its context is cancelled:
// net/http does that when the client closes its side; the server sets no
// BaseContext that a shutdown would cancel); nil otherwise. Whatever
// failed on the way then is no server fault, and the answer, if anyone
// reads it, is 400: a client that half-closes would retry a 503 forever.
func asConnectionFault(r *http.Request, err error) *connectionFault {
	var cf *connectionFault
	if errors.As(err, &cf) {
		return cf
	}
	if r.Context().Err() != nil {
		return &connectionFault{msg: "the connection was closed by the client before the answer", cause: err}
	}
	return nil
}

// logConnectionFault closes the connection after the answer and logs the
// fault at INFO, rate-limited.
func (a *API) logConnectionFault(w http.ResponseWriter, r *http.Request, cf *connectionFault) {
	w.Header().Set("Connection", "close")
	a.faultLog.Log(r.Context(), slog.LevelInfo, cf.msg, "connection fault",
		"request_id", RequestID(r.Context()), "remote_addr", r.RemoteAddr, "reason", cf.msg, "error", cf.cause)
}
