package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ErrHubFull: the chosen hub reached its capacity between the decision and
// the transaction.
var ErrHubFull = fmt.Errorf("%w: the hub reached its capacity while the device was being assigned; register again", allocation.ErrNoHub)

// Target is what hub choice reads of the resolved enrollment, after the
// overrides of a renewal.
type Target struct {
	// Exactly one of Individual and Group is set.
	Individual *enrollment.IndividualEnrollment
	Group      *enrollment.EnrollmentGroup
	// HostName is the enrollment's iotHubHostName pin, Policy its
	// allocationPolicy ("" for the instance default), IotHubs its iotHubs.
	HostName string
	Policy   string
	IotHubs  []string
	Reprov   enrollment.ReprovisionPolicy
	// Custom is the enrollment's webhook; nil when it has none.
	Custom *enrollment.CustomAllocationDefinition
}

// PolicySet is the optional capability of an allocation.Policy that offers
// several named policies (allocation.Registry); Explain runs each of them.
type PolicySet interface {
	Names() []string
	Policy(name string) allocation.Policy
}

// Placer chooses hubs. It is safe for concurrent use.
type Placer struct {
	st     *store.Store
	policy allocation.Policy
	// hubCache and settingsCache keep what registrations read of the
	// linked hubs and the settings (cache.go).
	hubCache      readCache[[]*enrollment.Hub]
	settingsCache readCache[*enrollment.Settings]
}

// New is a Placer over the hubs and settings of st that asks policy.
// cacheTTL bounds how long they are kept: DefaultReadCacheTTL when zero,
// no caching when negative.
func New(st *store.Store, policy allocation.Policy, cacheTTL time.Duration) *Placer {
	if cacheTTL == 0 {
		cacheTTL = DefaultReadCacheTTL
	}
	return &Placer{
		st:     st,
		policy: policy,
		// The caches age by the wall clock, not the pipeline's clock: a
		// test clock that stands still must not keep a value forever.
		hubCache:      readCache[[]*enrollment.Hub]{bucket: store.BucketHubs, ttl: cacheTTL, now: time.Now},
		settingsCache: readCache[*enrollment.Settings]{bucket: store.BucketSettings, ttl: cacheTTL, now: time.Now},
	}
}

// hubs lists the linked hubs.
func (p *Placer) hubs(ctx context.Context) ([]*enrollment.Hub, error) {
	all, err := p.hubCache.get(ctx, p.st.Hubs.All)
	if err != nil {
		return nil, fmt.Errorf("provisioning: list hubs: %w", err)
	}
	// Shallow copies: the kept list is shared by concurrent registrations.
	out := make([]*enrollment.Hub, len(all))
	for i, h := range all {
		c := *h
		out[i] = &c
	}
	return out, nil
}

// Uncapped reports whether hub had no capacity limit in the linked hubs
// as last read: then the persisting transaction need not read it again
// (CheckCapacity).
func (p *Placer) Uncapped(ctx context.Context, hub string) bool {
	all, err := p.hubs(ctx)
	if err != nil {
		return false
	}
	for _, h := range all {
		if enrollment.Key(h.Name) == enrollment.Key(hub) {
			return h.Capacity <= 0
		}
	}
	return false
}

// effectivePolicy is the enrollment's policy, else the instance default,
// else hashed.
func (p *Placer) effectivePolicy(ctx context.Context, t Target) (string, error) {
	if t.Policy != "" {
		return t.Policy, nil
	}
	set, err := p.settingsCache.get(ctx, func(ctx context.Context) (*enrollment.Settings, error) {
		set, err := p.st.Settings.Get(ctx, (&enrollment.Settings{}).StoreKey())
		if errors.Is(err, store.ErrNotFound) {
			return &enrollment.Settings{}, nil
		}
		return set, err
	})
	switch {
	case err == nil && set.DefaultAllocationPolicy != "":
		return set.DefaultAllocationPolicy, nil
	case err == nil || errors.Is(err, store.ErrNotFound):
		return enrollment.PolicyHashed, nil
	}
	return "", fmt.Errorf("provisioning: read settings: %w", err)
}

// eligibility evaluates every linked hub for a target and policy. current
// is the device's current hub ("" when none); explicit means the policy
// names its hub itself (static, iotHubHostName), so applyAllocationPolicy
// does not apply.
func (p *Placer) eligibility(ctx context.Context, linked []*enrollment.Hub, iotHubs []string, current string, explicit bool) ([]dps.HubEligibility, []*enrollment.Hub, error) {
	out := make([]dps.HubEligibility, 0, len(linked))
	var ok []*enrollment.Hub
	for _, h := range linked {
		e := dps.HubEligibility{Hub: h.Name, Capacity: h.Capacity}
		if h.Capacity > 0 {
			n, err := p.st.Registrations.CountBy(ctx, store.IndexRegistrationsByHub, h.Name)
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

// Allocate decides the hub the device should have if it may move. in
// describes the device (in.CurrentHub is its hub when it is assigned one);
// Allocate sets the policy and the enrollment. A device that may not move
// (reprovision policy updateHubAssignment=false) keeps its hub without
// asking the policy; the transaction checks that again against the record
// it reads.
func (p *Placer) Allocate(ctx context.Context, t Target, in allocation.Input) (allocation.Decision, error) {
	if in.CurrentHub != "" && !t.Reprov.UpdateHubAssignment {
		return allocation.Decision{Hub: in.CurrentHub, Reason: "reprovision policy keeps the device on its hub"}, nil
	}
	linked, err := p.hubs(ctx)
	if err != nil {
		return allocation.Decision{}, err
	}
	policy, err := p.effectivePolicy(ctx, t)
	if err != nil {
		return allocation.Decision{}, err
	}
	in.Enrollment, in.Group = t.Individual, t.Group
	return p.decide(ctx, t, in, linked, policy)
}

// decide runs one policy for a target over the linked hubs and checks its
// answer.
func (p *Placer) decide(ctx context.Context, t Target, in allocation.Input, linked []*enrollment.Hub, policy string) (allocation.Decision, error) {
	if t.HostName != "" && policy != enrollment.PolicyStatic { // a pinned hub wins over any policy
		pin := []string{t.HostName}
		hubs, ok, err := p.eligibility(ctx, linked, pin, in.CurrentHub, true)
		if err != nil {
			return allocation.Decision{}, err
		}
		if len(ok) == 0 {
			if !slices.ContainsFunc(linked, func(h *enrollment.Hub) bool { return enrollment.Key(h.Name) == enrollment.Key(t.HostName) }) {
				return allocation.Decision{}, fmt.Errorf("%w: iotHubHostName %q is not a linked hub", allocation.ErrNoHub, t.HostName)
			}
			return allocation.Decision{}, noHub(fmt.Sprintf("iotHubHostName %q cannot take the device", t.HostName), hubs)
		}
		return allocation.Decision{Hub: ok[0].Name, Reason: "the enrollment's iotHubHostName pins the hub"}, nil
	}
	iotHubs := t.IotHubs
	explicit := policy == enrollment.PolicyStatic
	if explicit {
		iotHubs = nil
		if h := enrollment.StaticHub(t.IotHubs, t.HostName); h != "" {
			iotHubs = []string{h}
		}
	}
	hubs, ok, err := p.eligibility(ctx, linked, iotHubs, in.CurrentHub, explicit)
	if err != nil {
		return allocation.Decision{}, err
	}
	if len(ok) == 0 {
		return allocation.Decision{}, noHub("no linked hub is eligible for the enrollment", hubs)
	}
	in.Policy = policy
	in.EligibleHubs = ok
	dec, err := p.policy.Allocate(ctx, in)
	if err != nil {
		return allocation.Decision{}, err
	}
	if !slices.ContainsFunc(ok, func(h *enrollment.Hub) bool { return enrollment.Key(h.Name) == enrollment.Key(dec.Hub) }) {
		return allocation.Decision{}, fmt.Errorf("%w: policy %s chose %q, which is not eligible", allocation.ErrNoHub, policy, dec.Hub)
	}
	return dec, nil
}

// CheckCapacity runs inside the persisting transaction: a device new to
// hub (current is the hub it is assigned now, "" for none) must find a
// free slot there, counted in the same transaction, so that concurrent
// registrations cannot overfill a hub.
//
// uncapped: the hub had no capacity in the hub list allocation read
// (Uncapped); then it is not read again, and a capacity set meanwhile
// applies from the next registration on, as if this one had committed
// first.
func (p *Placer) CheckCapacity(ctx context.Context, tx store.Tx, hub, current string, uncapped bool) error {
	if uncapped || (current != "" && enrollment.Key(current) == enrollment.Key(hub)) {
		return nil
	}
	h, err := p.st.Hubs.In(tx).Get(ctx, hub)
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
	if h, err = p.st.Hubs.In(tx).Locked(true).Get(ctx, hub); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	} else if h.Capacity <= 0 {
		return nil
	}
	n, err := p.st.Registrations.In(tx).CountBy(ctx, store.IndexRegistrationsByHub, hub)
	if err != nil {
		return err
	}
	if n >= h.Capacity {
		return fmt.Errorf("hub %s: %w", hub, ErrHubFull)
	}
	return nil
}

// Message is the errorMessage of a failed allocation, without the package
// prefixes of the sentinels.
func Message(err error) string {
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

// Explain fills in x the effective policy, every linked hub's eligibility
// and the decision of each policy (each of a PolicySet's, else the
// effective one) for t and the device in (in.CurrentHub set when it is
// assigned one), without registering anything. Explaining the custom
// policy calls the enrollment's webhook, as a registration would; it is
// skipped (with a reason) when the enrollment has no webhook.
func (p *Placer) Explain(ctx context.Context, t Target, in allocation.Input, x *dps.Explanation) error {
	policy, err := p.effectivePolicy(ctx, t)
	if err != nil {
		return err
	}
	linked, err := p.hubs(ctx)
	if err != nil {
		return err
	}
	x.EffectivePolicy = policy
	in.Enrollment, in.Group = t.Individual, t.Group
	if x.Hubs, _, err = p.eligibility(ctx, linked, t.IotHubs, in.CurrentHub, false); err != nil {
		return err
	}
	names := []string{policy}
	if set, ok := p.policy.(PolicySet); ok {
		names = set.Names()
	}
	for _, name := range names {
		d := dps.PolicyDecision{Policy: name, Effective: name == policy}
		switch {
		case name == enrollment.PolicyCustom && t.Custom == nil:
			d.Error = "the enrollment has no customAllocationDefinition; the webhook was not called"
		default:
			dec, err := p.decide(ctx, t, in, linked, name)
			switch {
			case err == nil:
				d.Hub, d.Reason = dec.Hub, dec.Reason
			case allocation.IsFailure(err):
				d.Error = Message(err)
			default:
				return err
			}
		}
		if d.Effective && x.CurrentHub != "" && !t.Reprov.UpdateHubAssignment {
			d.Hub, d.Reason, d.Error = x.CurrentHub, "reprovision policy updateHubAssignment=false keeps the device on its current hub", ""
		}
		x.Decisions = append(x.Decisions, d)
	}
	return nil
}

// CurrentHub is the hub the record assigns the device to, "" when none.
func CurrentHub(cur *enrollment.Registration) string {
	if Assigned(cur) {
		return cur.AssignedHub
	}
	return ""
}

// Assigned reports whether a registration record assigns its device a
// hub.
func Assigned(r *enrollment.Registration) bool {
	return r != nil && r.Status == enrollment.RegistrationAssigned && r.AssignedHub != ""
}

// NextState applies the reprovisioning rules of docs/protocol.md#allocation-and-reprovisioning to the
// record as it is now (cur, nil at first registration) and the hub the
// allocator proposed. It returns the hub and substatus:
//
//	no assigned record                        → proposed, initialAssignment
//	updateHubAssignment=false                 → current hub, substatus unchanged
//	hub unchanged, migrateDeviceData=true     → current hub, substatus unchanged
//	hub unchanged, migrateDeviceData=false    → current hub, deviceDataReset
//	moved back to the initial hub             → proposed, reprovisionedToInitialAssignment
//	moved, migrateDeviceData=true             → proposed, deviceDataMigrated
//	moved, migrateDeviceData=false            → proposed, deviceDataReset
func NextState(cur *enrollment.Registration, proposed string, p enrollment.ReprovisionPolicy) (hub, substatus string) {
	switch {
	case !Assigned(cur):
		return proposed, enrollment.SubstatusInitialAssignment
	case !p.UpdateHubAssignment:
		return cur.AssignedHub, cur.Substatus
	case enrollment.Key(proposed) == enrollment.Key(cur.AssignedHub):
		if p.MigrateDeviceData {
			return cur.AssignedHub, cur.Substatus
		}
		return cur.AssignedHub, enrollment.SubstatusDeviceDataReset
	case cur.InitialHub != "" && enrollment.Key(proposed) == enrollment.Key(cur.InitialHub):
		return proposed, enrollment.SubstatusReprovisionedToInitialAssignment
	case p.MigrateDeviceData:
		return proposed, enrollment.SubstatusDeviceDataMigrated
	}
	return proposed, enrollment.SubstatusDeviceDataReset
}
