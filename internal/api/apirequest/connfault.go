package apirequest

import (
	"errors"
	"io"
	"net"
	"net/http"
)

// ConnectionFault is a request the client broke off: its body ended
// before its Content-Length, stalled past the server's ReadTimeout or
// could not be read, or the client closed its side before the answer
// (net/http then cancels the request). It is the client's fault: 400
// (it wraps ErrBadRequest) with Connection: close, as the connection's
// framing is lost. The Cause, which may hold addresses, is for the log
// at INFO, never for the answer.
type ConnectionFault struct {
	Msg   string
	Cause error
}

func (e *ConnectionFault) Error() string { return ErrBadRequest.Error() + ": " + e.Msg }
func (e *ConnectionFault) Unwrap() error { return ErrBadRequest }

// bodyReadFault is the ConnectionFault of a failed body read.
func bodyReadFault(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &ConnectionFault{Msg: "the request body did not arrive in time", Cause: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &ConnectionFault{Msg: "the request body ended before its Content-Length (or last chunk)", Cause: err}
	}
	return &ConnectionFault{Msg: "the request body could not be read", Cause: err}
}

// AsConnectionFault is err as a *ConnectionFault, when it is one or when
// the client left while the request ran (its context is cancelled:
// net/http does that when the client closes its side; the server sets no
// BaseContext that a shutdown would cancel); nil otherwise. Whatever
// failed on the way then is no server fault, and the answer, if anyone
// reads it, is 400: a client that half-closes would retry a 503 forever.
func AsConnectionFault(r *http.Request, err error) *ConnectionFault {
	var cf *ConnectionFault
	if errors.As(err, &cf) {
		return cf
	}
	if r.Context().Err() != nil {
		return &ConnectionFault{Msg: "the connection was closed by the client before the answer", Cause: err}
	}
	return nil
}
