package deviceapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/zdps/zdps/internal/devicewire"
	"github.com/zdps/zdps/internal/provisioning/port"
)

// Body limits (Config.MaxPayloadBytes, Config.BodyTimeout).
const (
	// DefaultMaxPayloadBytes bounds the register body's payload
	// (devicewire.DefaultMaxPayloadBytes).
	DefaultMaxPayloadBytes = devicewire.DefaultMaxPayloadBytes
	// BodyRoom is what a register body needs beside its payload
	// (devicewire.BodyRoom).
	BodyRoom = devicewire.BodyRoom
	// DefaultBodyTimeout is how long a device may take to send its body
	// once the headers are in.
	DefaultBodyTimeout = 10 * time.Second
)

// bodyError is a device body the API refuses (devicewire.Fault); one
// whose FramingLost is set answers with Connection: close.
type bodyError = devicewire.Fault

// readFault classifies a failed body read.
func (a *API) readFault(err error) *bodyError {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &bodyError{Kind: "body stalled", Msg: fmt.Sprintf("the request body did not arrive within %s", a.cfg.BodyTimeout), Cause: err, FramingLost: true}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &bodyError{Kind: "body truncated", Msg: "the request body ended before its Content-Length (or last chunk)", Cause: err, FramingLost: true}
	}
	return &bodyError{Kind: "body unreadable", Msg: "the request body could not be read", Cause: err, FramingLost: true}
}

// clientGone: the device closed its side of the connection (a
// half-close counts: net/http cancels the request then) before the
// answer; the pipeline's work was cancelled or continues in the
// background.
func clientGone(err error) *bodyError {
	return &bodyError{Kind: "client gone", Msg: "the connection was closed by the device before the answer", Cause: err, FramingLost: true}
}

// readBody reads at most MaxBodyBytes within BodyTimeout. The content
// type is not checked: device SDKs cannot be changed and the body is
// decoded strictly anyway.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > a.cfg.MaxBodyBytes {
		return nil, errTooLarge
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil
	}
	// The server's ReadTimeout covers a whole request; a device body gets
	// its own, shorter deadline from now. Not every ResponseWriter can
	// (a test recorder); then the server's timeouts stay in force.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(a.cfg.BodyTimeout)); err == nil {
		// Once the body is in, the server's background read (which
		// notices the device leaving) must not hit the deadline while
		// the pipeline works: it would cancel the request.
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, a.readFault(err)
	}
	return b, nil
}

// withBody decodes the DeviceRegistration into req; the body's
// registrationId must name the path's (case-insensitively). It returns
// the form of the body's CSR (dps.CSRForm*), which the answer follows.
func (a *API) withBody(w http.ResponseWriter, r *http.Request, req *port.Request, required bool) (string, error) {
	body, err := a.readBody(w, r)
	if err != nil {
		return "", err
	}
	dr, err := devicewire.DecodeRegister(body, req, a.cfg.MaxPayloadBytes, required)
	return dr.CSRForm(), err
}

// registerRequest is the request of the register and status calls: the
// path and headers (common) with the DeviceRegistration body (withBody),
// and the form of its CSR.
func (a *API) registerRequest(w http.ResponseWriter, r *http.Request, required bool) (*port.Request, string, error) {
	req, err := a.common(r)
	if err != nil {
		return nil, "", err
	}
	form, err := a.withBody(w, r, req, required)
	return req, form, err
}

// asBodyFault returns err as a *bodyError when it is one, or when the
// device left while the request ran (its context is cancelled: net/http
// does that when the device closes its side, and the server sets no
// BaseContext that a shutdown would cancel); nil otherwise. Whatever
// failed on the way then is no server fault, and 400 rather than 503:
// a device that half-closes would retry a 503 forever the same way.
func asBodyFault(r *http.Request, err error) *bodyError {
	var be *bodyError
	if errors.As(err, &be) {
		return be
	}
	if r.Context().Err() != nil {
		return clientGone(err)
	}
	return nil
}

// logBodyFault logs a refused body at INFO, rate-limited per kind, and
// closes the connection after the answer when its framing is lost.
func (a *API) logBodyFault(w http.ResponseWriter, r *http.Request, be *bodyError, trackingID string) {
	if be.FramingLost {
		w.Header().Set("Connection", "close")
	}
	args := []any{"tracking_id", trackingID, "kind", be.Kind, "remote_addr", r.RemoteAddr, "reason", be.Msg}
	if be.Cause != nil {
		args = append(args, "error", be.Cause)
	}
	a.bodyLog.Log(r.Context(), slog.LevelInfo, be.Kind, "device body refused", args...)
}
