package dice

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// ErrPolicy is wrapped by every *PolicyError: the device's measurements
// violate the firmware policy of its enrollment.
var ErrPolicy = errors.New("dice: firmware policy violated")

// PolicyError says which rule a device's measurements violate. Its message
// is meant for the device and the operator: it names the layer and the
// measurement, with device-supplied strings quoted and shortened.
type PolicyError struct {
	// Layer is the layer of the measurement, "" when the violation is not
	// about one layer (no TcbInfo at all), "(unstated)" for a TcbInfo
	// without a layer field.
	Layer string
	// Reason names the measurement and the rule.
	Reason string
	// Rollback: the measurement's SVN is below the policy's minimum, the
	// signature of firmware rolled back to a vulnerable version.
	Rollback bool
}

func (e *PolicyError) Error() string {
	if e.Layer == "" {
		return "firmware policy: " + e.Reason
	}
	return "firmware policy: layer " + e.Layer + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrPolicy) hold.
func (e *PolicyError) Unwrap() error { return ErrPolicy }

func violation(layer *int64, format string, args ...any) *PolicyError {
	l := "(unstated)"
	if layer != nil {
		l = strconv.FormatInt(*layer, 10)
	}
	return &PolicyError{Layer: l, Reason: fmt.Sprintf(format, args...)}
}

// Evaluate checks the recorded DICE state of a device (State; nil for a
// chain without DICE extensions) against p (see firmware.Policy
// for the rules). A nil policy admits everything. The first violation is
// returned as a *PolicyError; the checks run in a fixed order (each
// measurement's vendor, model and flags, leaf first; then each layer rule
// by ascending layer), so the same chain always gets the same message.
func Evaluate(p *firmware.Policy, st *firmware.DICEState) error {
	if p == nil {
		return nil
	}
	var ms []firmware.Measurement
	if st != nil {
		ms = st.Measurements
	}
	if len(ms) == 0 {
		if p.AllowMissingTcbInfo {
			return nil
		}
		reason := "the certificate chain carries no DICE TcbInfo, and the policy requires one"
		if st != nil && st.LegacyRIoT {
			reason = "the certificate chain carries a legacy RIoT CompositeDeviceID, not a DICE TcbInfo, and the policy requires one"
		}
		return &PolicyError{Reason: reason}
	}
	rules := slices.Clone(p.Layers)
	slices.SortFunc(rules, func(a, b firmware.LayerPolicy) int { return cmpInt(a.Layer, b.Layer) })
	ruleFor := func(m firmware.Measurement) *firmware.LayerPolicy {
		if m.Layer == nil {
			return nil
		}
		for i := range rules {
			if rules[i].Layer == *m.Layer {
				return &rules[i]
			}
		}
		return nil
	}
	for _, m := range ms {
		vendor, model := p.Vendor, p.Model
		if r := ruleFor(m); r != nil {
			if r.Vendor != "" {
				vendor = r.Vendor
			}
			if r.Model != "" {
				model = r.Model
			}
		}
		if err := match(m, "vendor", m.Vendor, vendor); err != nil {
			return err
		}
		if err := match(m, "model", m.Model, model); err != nil {
			return err
		}
		for _, f := range m.Flags {
			if slices.Contains(p.ForbiddenFlags, f) {
				return violation(m.Layer, "operational flag %s is set, which the policy forbids", f)
			}
		}
	}
	for _, r := range rules {
		found := false
		for _, m := range ms {
			if m.Layer == nil || *m.Layer != r.Layer {
				continue
			}
			found = true
			if err := checkLayer(r, m); err != nil {
				return err
			}
		}
		if !found {
			l := r.Layer
			if st.LegacyRIoT {
				return violation(&l, "the certificate chain carries no TcbInfo for this layer (its legacy RIoT CompositeDeviceID is not a TcbInfo)")
			}
			return violation(&l, "the certificate chain carries no TcbInfo for this layer")
		}
	}
	return nil
}

func match(m firmware.Measurement, field, got, want string) error {
	switch {
	case want == "" || got == want:
		return nil
	case got == "":
		return violation(m.Layer, "the TcbInfo states no %s, the policy requires %s", field, firmware.Quote(want))
	}
	return violation(m.Layer, "%s %s is not %s", field, firmware.Quote(got), firmware.Quote(want))
}

func checkLayer(r firmware.LayerPolicy, m firmware.Measurement) error {
	if r.MinSVN != nil {
		switch {
		case m.SVN == nil:
			return violation(m.Layer, "the TcbInfo states no svn, the policy requires at least %d", *r.MinSVN)
		case *m.SVN < *r.MinSVN:
			pe := violation(m.Layer, "svn %d is below the minimum %d (rolled-back firmware)", *m.SVN, *r.MinSVN)
			pe.Rollback = true
			return pe
		}
	}
	if len(r.AllowedFWIDs) == 0 {
		return nil
	}
	if len(m.FWIDs) == 0 {
		return violation(m.Layer, "the TcbInfo carries no FWID, the policy allows only listed firmware")
	}
	for _, f := range m.FWIDs {
		if slices.Contains(r.AllowedFWIDs, f) {
			return nil
		}
	}
	return violation(m.Layer, "FWID %s is not allowed", m.FWIDs[0])
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
