package allocation

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

var (
	// ErrNoHub: no eligible hub could be chosen (none linked, none
	// eligible, the static hub not linked, or every candidate full or
	// unhealthy).
	ErrNoHub = errors.New("allocation: no eligible hub")
	// ErrUnknownPolicy: the effective policy names no policy this instance
	// wired.
	ErrUnknownPolicy = errors.New("allocation: unknown allocation policy")
	// ErrPolicyFailed: a policy could not decide because something it
	// depends on failed (the custom webhook timed out, answered non-2xx,
	// answered malformed JSON or a hub that is not linked). The wrapping
	// error says what went wrong.
	ErrPolicyFailed = errors.New("allocation: policy failed")
)

func IsFailure(err error) bool {
	return errors.Is(err, ErrNoHub) || errors.Is(err, ErrUnknownPolicy) || errors.Is(err, ErrPolicyFailed)
}

type Input struct {
	// Policy is the effective policy name (the enrollment's, else the
	// instance default), for policies that serve several names.
	Policy string
	// Exactly one of Enrollment and Group is set: the enrollment that
	// admitted the device.
	Enrollment *enrollment.IndividualEnrollment
	Group      *enrollment.EnrollmentGroup
	// RegistrationID is the attested registration ID.
	RegistrationID string
	// AttestationType is the mechanism the device proved
	// (enrollment.AttestationSymmetricKey, AttestationX509, AttestationTPM);
	// "" when unknown (an explanation without a device).
	AttestationType string
	// Payload is the device's registration payload (untrusted JSON).
	Payload json.RawMessage
	// CurrentHub is the hub the device is assigned to now, "" at first
	// registration.
	CurrentHub string
	// CurrentDeviceID is the device ID of the current assignment, "" at
	// first registration.
	CurrentDeviceID string
	// SourceAddr is the device's network address as the transport saw it
	// (host or host:port), "" when unknown.
	SourceAddr string
	// SourceRTT is the round-trip time measured to the device on the
	// connection it registered over, 0 when unknown.
	SourceRTT time.Duration
	// EligibleHubs are the hubs the policy may choose from.
	EligibleHubs []*enrollment.Hub
}

type Decision struct {
	// Hub is the chosen hub's name, one of Input.EligibleHubs.
	Hub string
	// InitialTwin, when not nil, is the initial twin the policy wants the
	// hub to give the device (the custom policy's webhook answer).
	InitialTwin json.RawMessage
	// Payload, when not nil, replaces the payload returned to the device
	// (the custom policy's webhook answer).
	Payload json.RawMessage
	// Reason says, for operators, why the policy chose Hub (shown by
	// `zdps allocation explain` and logged); never device input verbatim.
	Reason string
}

type Policy interface {
	Allocate(ctx context.Context, in Input) (Decision, error)
}
