// Package allocation decides which linked hub a device is assigned to.
//
// One small interface, Policy, with one implementation per policy kind in
// a subpackage (allocation/hashed first; geoLatency, static and custom
// follow). Policies are wired explicitly in cmd/zdps, never registered by
// init side effects.
//
// Contract for every Policy: it chooses only among Input.EligibleHubs (the
// caller has already removed hubs with applyAllocationPolicy=false and
// applied the enrollment's iotHubs list), it is safe for concurrent use,
// it never logs the payload, and it returns ErrNoHub (wrapped) when it
// cannot choose.
package allocation

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/zdps/zdps/pkg/enrollment"
)

// ErrNoHub: no eligible hub could be chosen (none linked, none eligible, or
// every weight zero). The registration fails; it is not a server fault.
var ErrNoHub = errors.New("allocation: no eligible hub")

// Input is everything a policy may base its decision on.
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
	// Payload is the device's registration payload (untrusted JSON).
	Payload json.RawMessage
	// CurrentHub is the hub the device is assigned to now, "" at first
	// registration.
	CurrentHub string
	// EligibleHubs are the hubs the policy may choose from.
	EligibleHubs []*enrollment.Hub
}

// Decision is a policy's answer.
type Decision struct {
	// Hub is the chosen hub's name, one of Input.EligibleHubs.
	Hub string
	// Payload, when not nil, replaces the payload returned to the device
	// (the custom policy's webhook answer).
	Payload json.RawMessage
}

// Policy chooses a hub.
type Policy interface {
	Allocate(ctx context.Context, in Input) (Decision, error)
}
