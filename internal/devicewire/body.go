package devicewire

import (
	"fmt"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Body limits.
const (
	// DefaultMaxPayloadBytes bounds the register body's payload, the
	// device's custom JSON for allocation. Azure limits the whole device
	// message to 96 KB; 80 KiB leaves the rest of DefaultMaxBodyBytes for
	// BodyRoom.
	DefaultMaxPayloadBytes = 80 << 10
	// DefaultMaxBodyBytes is Azure's device message limit (96 KB). It
	// leaves BodyRoom beside a payload of DefaultMaxPayloadBytes.
	DefaultMaxBodyBytes = 96 << 10
	// BodyRoom is what a register body needs beside its payload: a CSR
	// (base64; an RSA-4096 one is about 2.3 KiB), TPM keys, the
	// registration ID and the JSON around them. A body limit must leave
	// it above the payload limit.
	BodyRoom = 16 << 10
)

// Fault logging: a device (or anyone) can cause faults at will, so they
// go through ratelog at INFO, at most FaultLogLines per kind and
// interval.
const (
	FaultLogLines    = 10
	FaultLogInterval = time.Minute
)

// Fault is device input the API refuses: cut short, unreadable, stalled,
// malformed, or with a payload over the limit. All are the device's
// fault: 400/400004 (it wraps ErrBadRequest), logged at INFO through the
// rate-limited logger, never as a server fault.
type Fault struct {
	// Kind is fixed words, the rate limiter's key.
	Kind string
	// Msg is what the device reads.
	Msg string
	// Cause is for the log only (it may hold addresses).
	Cause error
	// FramingLost: the rest of the connection cannot be parsed as the
	// next request; the transport closes it after the answer.
	FramingLost bool
}

func (e *Fault) Error() string { return ErrBadRequest.Error() + ": " + e.Msg }
func (e *Fault) Unwrap() error { return ErrBadRequest }

// DecodeRegister decodes a DeviceRegistration body into req, whose
// RegistrationID the transport set (from the path or the MQTT CONNECT):
// the body's registrationId must name the same one (case-insensitively).
// When required is false a blank body leaves req as it is. It returns the
// decoded body (nil for a blank one), whose CSRForm says how to answer.
func DecodeRegister(body []byte, req *port.Request, maxPayload int64, required bool) (*dps.DeviceRegistration, error) {
	if !required && len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil
	}
	dr, err := dps.DecodeDeviceRegistration(body)
	if err != nil {
		return nil, &Fault{Kind: "body malformed", Msg: strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "), Cause: err}
	}
	if n := int64(len(dr.Payload)); n > maxPayload {
		return nil, &Fault{Kind: "payload too large", Msg: fmt.Sprintf("payload is %d bytes of JSON; the limit is %d bytes", n, maxPayload)}
	}
	if !strings.EqualFold(dr.RegistrationID, req.RegistrationID) {
		return nil, BadRequest("registrationId of the body differs from the path's")
	}
	if dr.TPM != nil {
		req.TPM = &enrollment.TPMAttestation{EndorsementKey: dr.TPM.EndorsementKey, StorageRootKey: dr.TPM.StorageRootKey}
	}
	req.Payload = dr.Payload
	req.CSR = dr.CSRDER()
	return dr, nil
}
