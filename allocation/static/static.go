package static

import (
	"context"
	"fmt"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Policy is the static policy; the zero value is ready and safe for
// concurrent use.
type Policy struct{}

// New returns the policy.
func New() *Policy { return &Policy{} }

var _ allocation.Policy = (*Policy)(nil)

// Allocate returns the enrollment's hub when it is eligible.
func (*Policy) Allocate(_ context.Context, in allocation.Input) (allocation.Decision, error) {
	name := Hub(in)
	if name == "" {
		return allocation.Decision{}, fmt.Errorf("%w: the static policy needs the enrollment to name exactly one hub in iotHubs", allocation.ErrNoHub)
	}
	for _, h := range in.EligibleHubs {
		if h != nil && enrollment.Key(h.Name) == enrollment.Key(name) {
			return allocation.Decision{Hub: h.Name, Reason: fmt.Sprintf("the enrollment names %s (static)", h.Name)}, nil
		}
	}
	return allocation.Decision{}, fmt.Errorf("%w: the static hub %q is not eligible", allocation.ErrNoHub, name)
}

// Hub is the hub the enrollment of in names, "" when none.
func Hub(in allocation.Input) string {
	if s := in.Spec(); s != nil {
		return enrollment.StaticHub(s.IoTHubs, s.IoTHubHostName)
	}
	return ""
}
