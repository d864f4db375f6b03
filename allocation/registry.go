package allocation

import (
	"context"
	"fmt"
	"slices"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Registry dispatches to a policy by Input.Policy. It is the engine the
// pipeline calls: cmd/zdps builds it with every policy the instance
// offers. It is safe for concurrent use.
type Registry struct {
	byKey map[string]Policy
	names []string
}

// NewRegistry builds a registry from policy names (the DPS spellings:
// enrollment.PolicyHashed, PolicyGeoLatency, PolicyStatic, PolicyCustom)
// to policies. A name that is not a DPS policy or a nil policy is refused.
func NewRegistry(policies map[string]Policy) (*Registry, error) {
	if len(policies) == 0 {
		return nil, fmt.Errorf("allocation: a registry needs at least one policy")
	}
	r := &Registry{byKey: map[string]Policy{}}
	for name, p := range policies {
		canon, ok := enrollment.NormalizeAllocationPolicy(name)
		if !ok {
			return nil, fmt.Errorf("allocation: %q is not an allocation policy", name)
		}
		if p == nil {
			return nil, fmt.Errorf("allocation: policy %q is nil", name)
		}
		r.byKey[canon] = p
		r.names = append(r.names, canon)
	}
	slices.Sort(r.names)
	return r, nil
}

// Names are the policies the registry offers, sorted.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Policy returns the policy of that name (any case), or nil.
func (r *Registry) Policy(name string) Policy {
	canon, ok := enrollment.NormalizeAllocationPolicy(name)
	if !ok {
		return nil
	}
	return r.byKey[canon]
}

// Allocate runs the policy Input.Policy names; an unknown or unwired name
// fails with ErrUnknownPolicy.
func (r *Registry) Allocate(ctx context.Context, in Input) (Decision, error) {
	p := r.Policy(in.Policy)
	if p == nil {
		return Decision{}, fmt.Errorf("%w: %q is not enabled on this instance (enabled: %v)", ErrUnknownPolicy, in.Policy, r.names)
	}
	return p.Allocate(ctx, in)
}

var _ Policy = (*Registry)(nil)
