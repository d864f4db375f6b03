package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// This file is the allocation step of the pipeline: which hubs a device
// may go to (eligibility), which policy decides (precedence), and the
// capacity check that keeps a full hub from taking more devices.
//
// Precedence: an enrollment's iotHubHostName (deprecated in DPS, kept for
// compatibility) pins the hub; else the enrollment's allocationPolicy;
// else the instance's defaultAllocationPolicy; else hashed. The policy is
// read at each registration, so a change applies to later registrations
// only; devices already assigned move only when they register again and
// their reprovision policy lets them.
//
// Eligibility, in order: the enrollment's iotHubs, or every linked hub
// when empty; minus hubs with applyAllocationPolicy=false (except for the
// static policy and an iotHubHostName pin, which name their hub
// explicitly); minus unhealthy and draining hubs; minus hubs at capacity
// (a device already on a hub holds its slot there).

// errHubFull: the chosen hub reached its capacity between the decision and
// the transaction.
var errHubFull = fmt.Errorf("%w: the hub reached its capacity while the device was being assigned; register again", allocation.ErrNoHub)

// eligibility evaluates every linked hub for a target and policy. current
// is the device's current hub ("" when none); explicit means the policy
// names its hub itself (static, iotHubHostName), so applyAllocationPolicy
// does not apply.
func (s *Service) eligibility(ctx context.Context, linked []*enrollment.Hub, iotHubs []string, current string, explicit bool) ([]dps.HubEligibility, []*enrollment.Hub, error) {
	out := make([]dps.HubEligibility, 0, len(linked))
	var ok []*enrollment.Hub
	for _, h := range linked {
		e := dps.HubEligibility{Hub: h.Name, Capacity: h.Capacity}
		if h.Capacity > 0 {
			n, err := s.st.Registrations.CountBy(ctx, store.IndexRegistrationsByHub, h.Name)
			if err != nil {
				return nil, nil, fmt.Errorf("provisioning: count devices of hub %s: %w", h.Name, err)
			}
			e.DeviceCount = n
		}
		switch {
		case len(iotHubs) > 0 && !slices.ContainsFunc(iotHubs, func(n string) bool { return enrollment.Key(n) == enrollment.Key(h.Name) }):
			e.Reason = "not in the enrollment's iotHubs"
		case !explicit && !h.AppliesPolicy():
			e.Reason = "applyAllocationPolicy is false"
		case h.Status == enrollment.HubUnhealthy:
			e.Reason = "unhealthy"
		case h.Status == enrollment.HubDraining:
			e.Reason = "draining"
		case h.Capacity > 0 && e.DeviceCount-holds(current, h) >= h.Capacity:
			e.Reason = fmt.Sprintf("full (%d of %d devices)", e.DeviceCount, h.Capacity)
		default:
			e.Eligible = true
			ok = append(ok, h)
		}
		out = append(out, e)
	}
	return out, ok, nil
}

// holds is 1 when the device is on hub h now (it holds a slot there).
func holds(current string, h *enrollment.Hub) int {
	if current != "" && enrollment.Key(current) == enrollment.Key(h.Name) {
		return 1
	}
	return 0
}

// noHub explains an empty eligible set.
func noHub(what string, hubs []dps.HubEligibility) error {
	if len(hubs) == 0 {
		return fmt.Errorf("%w: no hub is linked", allocation.ErrNoHub)
	}
	var why []string
	for _, h := range hubs {
		if !h.Eligible && len(why) < 10 {
			why = append(why, h.Hub+": "+h.Reason)
		}
	}
	return fmt.Errorf("%w: %s (%s)", allocation.ErrNoHub, what, strings.Join(why, "; "))
}

// allocate decides the hub the device should have if it may move. A
// device that may not move (reprovision policy updateHubAssignment=false)
// keeps its hub without asking the allocator; the transaction checks that
// again against the record it reads.
func (s *Service) allocate(ctx context.Context, t *target, req *Request, id *Identity, cur *enrollment.Registration) (allocation.Decision, error) {
	current, currentDevice := "", ""
	if assigned(cur) {
		current, currentDevice = cur.AssignedHub, cur.DeviceID
		if !t.reprov.UpdateHubAssignment {
			return allocation.Decision{Hub: current, Reason: "reprovision policy keeps the device on its hub"}, nil
		}
	}
	linked, err := s.hubs(ctx)
	if err != nil {
		return allocation.Decision{}, err
	}
	policy, err := s.effectivePolicy(ctx, t)
	if err != nil {
		return allocation.Decision{}, err
	}
	in := allocation.Input{
		Policy:          policy,
		Enrollment:      t.individual,
		Group:           t.group,
		RegistrationID:  req.RegistrationID,
		Payload:         req.Payload,
		CurrentHub:      current,
		CurrentDeviceID: currentDevice,
		SourceAddr:      req.RemoteAddr,
		SourceRTT:       req.RTT,
	}
	if id != nil {
		in.AttestationType = id.Type
	}
	return s.decide(ctx, t, in, linked, policy)
}

// decide runs one policy for a target over the linked hubs and checks its
// answer.
func (s *Service) decide(ctx context.Context, t *target, in allocation.Input, linked []*enrollment.Hub, policy string) (allocation.Decision, error) {
	if t.hostName != "" && policy != enrollment.PolicyStatic { // a pinned hub wins over any policy
		pin := []string{t.hostName}
		hubs, ok, err := s.eligibility(ctx, linked, pin, in.CurrentHub, true)
		if err != nil {
			return allocation.Decision{}, err
		}
		if len(ok) == 0 {
			if !slices.ContainsFunc(linked, func(h *enrollment.Hub) bool { return enrollment.Key(h.Name) == enrollment.Key(t.hostName) }) {
				return allocation.Decision{}, fmt.Errorf("%w: iotHubHostName %q is not a linked hub", allocation.ErrNoHub, t.hostName)
			}
			return allocation.Decision{}, noHub(fmt.Sprintf("iotHubHostName %q cannot take the device", t.hostName), hubs)
		}
		return allocation.Decision{Hub: ok[0].Name, Reason: "the enrollment's iotHubHostName pins the hub"}, nil
	}
	iotHubs := t.iotHubs
	explicit := policy == enrollment.PolicyStatic
	if explicit {
		iotHubs = nil
		if h := enrollment.StaticHub(t.iotHubs, t.hostName); h != "" {
			iotHubs = []string{h}
		}
	}
	hubs, ok, err := s.eligibility(ctx, linked, iotHubs, in.CurrentHub, explicit)
	if err != nil {
		return allocation.Decision{}, err
	}
	if len(ok) == 0 {
		return allocation.Decision{}, noHub("no linked hub is eligible for the enrollment", hubs)
	}
	in.Policy = policy
	in.EligibleHubs = ok
	dec, err := s.cfg.Allocator.Allocate(ctx, in)
	if err != nil {
		return allocation.Decision{}, err
	}
	if !slices.ContainsFunc(ok, func(h *enrollment.Hub) bool { return enrollment.Key(h.Name) == enrollment.Key(dec.Hub) }) {
		return allocation.Decision{}, fmt.Errorf("%w: policy %s chose %q, which is not eligible", allocation.ErrNoHub, policy, dec.Hub)
	}
	return dec, nil
}

// checkCapacity runs inside the persisting transaction: a device new to
// hub must find a free slot there, counted in the same transaction, so
// that concurrent registrations cannot overfill a hub.
//
// uncapped: the hub had no capacity in the hub list allocation read
// (cache.go); then it is not read again, and a capacity set meanwhile
// applies from the next registration on, as if this one had committed
// first.
func (s *Service) checkCapacity(ctx context.Context, tx store.Tx, hub string, cur *enrollment.Registration, uncapped bool) error {
	if uncapped || (assigned(cur) && enrollment.Key(cur.AssignedHub) == enrollment.Key(hub)) {
		return nil
	}
	h, err := s.st.Hubs.In(tx).Get(ctx, hub)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // unlinked meanwhile; the device was told a hub that existed at decision time
	case err != nil:
		return err
	case h.Capacity <= 0:
		return nil
	}
	// Counted under the hub's exclusive lock, which every registration
	// assigning a device to a capped hub takes: in a conditional
	// transaction (persist) the count then sees every one that committed
	// before, and none commits meanwhile. A hub without capacity is only
	// read, so registrations to it never wait for each other.
	if h, err = s.st.Hubs.In(tx).Locked(true).Get(ctx, hub); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	} else if h.Capacity <= 0 {
		return nil
	}
	n, err := s.st.Registrations.In(tx).CountBy(ctx, store.IndexRegistrationsByHub, hub)
	if err != nil {
		return err
	}
	if n >= h.Capacity {
		return fmt.Errorf("hub %s: %w", hub, errHubFull)
	}
	return nil
}

// failAllocation stores and answers the failed operation of an allocation
// failure.
func (s *Service) failAllocation(ctx context.Context, r *registration, cause error) (*enrollment.Operation, error) {
	op := s.book.Failed(r.opID, r.req.RegistrationID, dps.CodeAllocationFailed, allocationMessage(cause))
	if err := s.book.Final(ctx, op); err != nil {
		return nil, err
	}
	r.log.WarnContext(ctx, "registration failed", "outcome", OutcomeFailed, "reason", op.ErrorMessage)
	return op, nil
}

// allocationMessage is the errorMessage of a failed allocation, without
// the package prefixes of the sentinels.
func allocationMessage(err error) string {
	m := err.Error()
	for _, p := range []string{allocation.ErrNoHub.Error() + ": ", allocation.ErrUnknownPolicy.Error() + ": "} {
		m = strings.Replace(m, p, "", 1)
	}
	switch {
	case errors.Is(err, allocation.ErrNoHub):
		return "allocation failed: no eligible hub: " + m
	case errors.Is(err, allocation.ErrUnknownPolicy):
		return "allocation failed: unknown allocation policy: " + m
	}
	return "allocation failed: " + m
}
