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

// IsFailure reports whether err is an allocation failure: an answer to
// the device (status failed, errorCode 400209, the error's message as
// errorMessage), not a server fault.
func IsFailure(err error) bool {
	return errors.Is(err, ErrNoHub) || errors.Is(err, ErrUnknownPolicy) || errors.Is(err, ErrPolicyFailed)
}

// Input is what a Policy knows of one registration: the enrollment that
// admitted the device, what the device sent, where it stands now and the
// hubs it may go to. Policies must not modify it or keep references to it
// after Allocate returns. The enrollment and hubs were read before the
// persisting transaction, which checks again what must hold (capacity).
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

// Spec is the shared fields (hubs, pinned hub, webhook, twin) of the
// enrollment or group that admitted the device, nil when neither is set.
func (in Input) Spec() *enrollment.Spec {
	switch {
	case in.Enrollment != nil:
		return &in.Enrollment.Spec
	case in.Group != nil:
		return &in.Group.Spec
	}
	return nil
}

// Decision is a Policy's answer. The pipeline checks Hub against
// Input.EligibleHubs (a hub outside them fails the registration with
// ErrNoHub), then applies the reprovision policy and the hub's capacity
// inside the persisting transaction, so the hub a device ends on may be
// its current one rather than Hub.
type Decision struct {
	// Hub is the chosen hub's name, one of Input.EligibleHubs.
	Hub string
	// InitialTwin, when not nil, is the initial twin the policy wants the
	// hub to give the device (the custom policy's webhook answer).
	InitialTwin json.RawMessage
	// Payload, when not nil, is the payload returned to the device as
	// registrationState.payload (the custom policy's webhook answer). It
	// is the only payload a device is ever answered: nil answers none, and
	// the device's own Input.Payload is never echoed (Azure's behaviour).
	Payload json.RawMessage
	// Reason says, for operators, why the policy chose Hub (shown by
	// `zdps allocation explain` and logged); never device input verbatim.
	Reason string
}

// Policy chooses a hub for one registration; it is the plugin interface
// of allocation, one implementation per policy kind, wired explicitly by
// cmd/zdps.
//
// Allocate must choose only among in.EligibleHubs, be safe for concurrent
// use, honour ctx (the pipeline bounds a registration by its deadline),
// and never log in.Payload. It may be called for an explanation (`zdps
// allocation explain`) with no device behind it, so it must not have side
// effects a registration would not tolerate twice.
//
// Error contract, as the device sees it:
//
//   - nil: the device is assigned (status assigned) to Decision.Hub, or
//     kept where the reprovision policy says.
//   - an error wrapping ErrNoHub, ErrUnknownPolicy or ErrPolicyFailed
//     (IsFailure): the registration fails. The device gets a 200 with
//     status failed, registrationState.errorCode 400209 and the error's
//     message as errorMessage, so write messages for operators and never
//     quote device input or secrets in them. No registration record and
//     no certificate are stored; the device may register again later.
//   - any other error (including ctx's): a server fault. A device still
//     waiting for its answer gets 500 (errorCode 500000) or, for a
//     deadline, 503 (503000) with Retry-After, and retries; a registration
//     finishing in the background ends failed with errorCode 500000
//     ("internal error", register again) or 408001 past its deadline.
//     Use it only for faults of zdps itself, never for a decision.
type Policy interface {
	Allocate(ctx context.Context, in Input) (Decision, error)
}
