package deviceapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Body limits (Config.MaxPayloadBytes, Config.BodyTimeout).
const (
	// DefaultMaxPayloadBytes bounds the register body's payload, the
	// device's custom JSON for allocation. Azure limits the whole device
	// message to 96 KB; 80 KiB leaves the rest of DefaultMaxBodyBytes for
	// BodyRoom.
	DefaultMaxPayloadBytes = 80 << 10
	// BodyRoom is what a register body needs beside its payload: a CSR
	// (base64; an RSA-4096 one is about 2.3 KiB), TPM keys, the
	// registration ID and the JSON around them. MaxBodyBytes must leave
	// it above MaxPayloadBytes.
	BodyRoom = 16 << 10
	// DefaultBodyTimeout is how long a device may take to send its body
	// once the headers are in.
	DefaultBodyTimeout = 10 * time.Second
)

// Body fault logging: a device (or anyone) can cause these at will, so
// they go through ratelog at INFO, at most bodyLogLines per kind and
// interval.
const (
	bodyLogLines    = 10
	bodyLogInterval = time.Minute
)

// bodyError is a device body the API refuses: cut short, unreadable,
// stalled, malformed, or with a payload over the limit. All are the
// device's fault: 400/400004 (it wraps ErrBadRequest), logged at INFO
// through the rate-limited logger, never as a server fault.
type bodyError struct {
	// kind is fixed words, the rate limiter's key.
	kind string
	// msg is what the device reads.
	msg string
	// cause is for the log only (it may hold addresses).
	cause error
	// framingLost: the rest of the connection cannot be parsed as the
	// next request; the answer carries Connection: close.
	framingLost bool
}

func (e *bodyError) Error() string { return ErrBadRequest.Error() + ": " + e.msg }
func (e *bodyError) Unwrap() error { return ErrBadRequest }

// readFault classifies a failed body read.
func (a *API) readFault(err error) *bodyError {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &bodyError{kind: "body stalled", msg: fmt.Sprintf("the request body did not arrive within %s", a.cfg.BodyTimeout), cause: err, framingLost: true}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &bodyError{kind: "body truncated", msg: "the request body ended before its Content-Length (or last chunk)", cause: err, framingLost: true}
	}
	return &bodyError{kind: "body unreadable", msg: "the request body could not be read", cause: err, framingLost: true}
}

// clientGone: the device closed its side of the connection (a
// half-close counts: net/http cancels the request then) before the
// answer; the pipeline's work was cancelled or continues in the
// background.
func clientGone(err error) *bodyError {
	return &bodyError{kind: "client gone", msg: "the connection was closed by the device before the answer", cause: err, framingLost: true}
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
// registrationId must name the path's (case-insensitively).
func (a *API) withBody(w http.ResponseWriter, r *http.Request, req *provisioning.Request, required bool) error {
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	if !required && len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dr, err := dps.DecodeDeviceRegistration(body)
	if err != nil {
		return &bodyError{kind: "body malformed", msg: strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "), cause: err}
	}
	if n := int64(len(dr.Payload)); n > a.cfg.MaxPayloadBytes {
		return &bodyError{kind: "payload too large", msg: fmt.Sprintf("payload is %d bytes of JSON; the limit is %d bytes", n, a.cfg.MaxPayloadBytes)}
	}
	if !strings.EqualFold(dr.RegistrationID, req.RegistrationID) {
		return badRequest("registrationId of the body differs from the path's")
	}
	if dr.TPM != nil {
		req.TPM = &enrollment.TPMAttestation{EndorsementKey: dr.TPM.EndorsementKey, StorageRootKey: dr.TPM.StorageRootKey}
	}
	req.Payload = dr.Payload
	req.CSR = dr.CSRDER()
	return nil
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
	if be.framingLost {
		w.Header().Set("Connection", "close")
	}
	args := []any{"tracking_id", trackingID, "kind", be.kind, "remote_addr", r.RemoteAddr, "reason", be.msg}
	if be.cause != nil {
		args = append(args, "error", be.cause)
	}
	a.bodyLog.Log(r.Context(), slog.LevelInfo, be.kind, "device body refused", args...)
}
