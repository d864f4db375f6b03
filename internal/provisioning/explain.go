package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/provisioning/placement"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ExplainRequest asks which hub each policy would choose for a device.
type ExplainRequest struct {
	// RegistrationID of the device.
	RegistrationID string `json:"registrationId"`
	// EnrollmentGroupID names the group when the device has no individual
	// enrollment and no registration record yet (a group device is only
	// known by its credential otherwise).
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	// Payload is the registration payload to assume (geoLatency, custom).
	Payload json.RawMessage `json:"payload,omitempty"`
	// SourceAddr is the device address to assume (geoLatency networks).
	SourceAddr string `json:"sourceAddress,omitempty"`
	// SourceRTT is the measured round trip to assume (geoLatency).
	SourceRTT time.Duration `json:"-"`
}

// Explain says, for a registration ID, which hub each policy would choose
// and why, without registering anything. It resolves the enrollment as
// registration does (the individual enrollment first, else the group
// named in the request, else the group of the device's registration
// record); ErrNotFound when none applies, ErrInvalid for a bad ID.
//
// Explaining the custom policy calls the enrollment's webhook, as a
// registration would; it is skipped (with a reason) when the enrollment
// has no webhook.
func (s *Service) Explain(ctx context.Context, req ExplainRequest) (*dps.Explanation, error) {
	if err := enrollment.ValidateRegistrationID(req.RegistrationID); err != nil {
		return nil, fmt.Errorf("%w: %w", port.ErrInvalid, err)
	}
	cur, err := s.st.Registrations.Get(ctx, req.RegistrationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cur = nil
	case err != nil:
		return nil, fmt.Errorf("provisioning: read registration: %w", err)
	}
	id := &port.Identity{RegistrationID: req.RegistrationID}
	e, err := s.st.Enrollments.Get(ctx, req.RegistrationID)
	switch {
	case err == nil:
		id.Enrollment = e
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("provisioning: read enrollment: %w", err)
	default:
		gid := req.EnrollmentGroupID
		if gid == "" && cur != nil {
			gid = cur.EnrollmentGroupID
		}
		if gid == "" {
			return nil, fmt.Errorf("%w: no individual enrollment for %q and no registration record naming its group; give enrollmentGroupId", port.ErrNotFound, req.RegistrationID)
		}
		g, err := s.st.Groups.Get(ctx, gid)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: enrollment group %q", port.ErrNotFound, gid)
		}
		if err != nil {
			return nil, fmt.Errorf("provisioning: read group: %w", err)
		}
		id.Group = g
	}
	t, err := s.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	x := &dps.Explanation{
		RegistrationID:    req.RegistrationID,
		EnrollmentKind:    "individualEnrollment",
		EnrollmentID:      t.name,
		PinnedHub:         t.hostName,
		ReprovisionPolicy: dps.ReprovisionPolicy(t.reprov),
		Decisions:         []dps.PolicyDecision{},
	}
	if t.group != nil {
		x.EnrollmentKind = "enrollmentGroup"
	}
	in := allocation.Input{
		RegistrationID: req.RegistrationID,
		Payload:        req.Payload,
		SourceAddr:     req.SourceAddr,
		SourceRTT:      req.SourceRTT,
	}
	if placement.Assigned(cur) {
		x.CurrentHub = cur.AssignedHub
		in.CurrentHub, in.CurrentDeviceID = cur.AssignedHub, cur.DeviceID
		in.AttestationType = cur.AttestationType
	}
	if err := s.place.Explain(ctx, t.placement(), in, x); err != nil {
		return nil, err
	}
	return x, nil
}
