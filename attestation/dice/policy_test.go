package dice_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

func TestEvaluate(t *testing.T) {
	a := strings.Repeat("aa", 32)
	b := strings.Repeat("bb", 32)
	c := strings.Repeat("cc", 32)
	fw := func(d string) []firmware.Digest {
		return []firmware.Digest{{HashAlg: "sha256", Digest: d}}
	}
	m := func(layer int64, svn int64, vendor, digest string, flags ...string) firmware.Measurement {
		return firmware.Measurement{Layer: i64(layer), SVN: i64(svn), Vendor: vendor, Model: "m", FWIDs: fw(digest), Flags: flags}
	}
	st := func(ms ...firmware.Measurement) *firmware.DICEState {
		return &firmware.DICEState{DeviceIDKey: "sha256:00", Measurements: ms}
	}
	policy := &firmware.Policy{
		Vendor: "acme", Model: "m", ForbiddenFlags: []string{"debug"},
		Layers: []firmware.LayerPolicy{
			{Layer: 1, MinSVN: i64(3), AllowedFWIDs: append(fw(a), fw(b)...)},
			{Layer: 0, Vendor: "chipco", AllowedFWIDs: fw(c)},
		},
	}
	cases := []struct {
		name   string
		policy *firmware.Policy
		state  *firmware.DICEState
		want   string // "" admits; else the message
	}{
		{"no policy admits anything", nil, nil, ""},
		{"all rules met", policy, st(m(1, 3, "acme", a), m(0, 1, "chipco", c)), ""},
		{"new firmware of a rollout", policy, st(m(1, 9, "acme", b), m(0, 1, "chipco", c)), ""},
		{"no DICE at all", policy, nil, "firmware policy: the certificate chain carries no DICE TcbInfo, and the policy requires one"},
		{"legacy RIoT only", policy, &firmware.DICEState{LegacyRIoT: true}, "firmware policy: the certificate chain carries a legacy RIoT CompositeDeviceID, not a DICE TcbInfo, and the policy requires one"},
		{"missing TcbInfo allowed", &firmware.Policy{AllowMissingTcbInfo: true}, nil, ""},
		{"allowed-missing still checks present ones", &firmware.Policy{AllowMissingTcbInfo: true, Vendor: "acme"}, st(m(1, 3, "evil", a)), `firmware policy: layer 1: vendor "evil" is not "acme"`},
		{"rolled back", policy, st(m(1, 2, "acme", a), m(0, 1, "chipco", c)), "firmware policy: layer 1: svn 2 is below the minimum 3 (rolled-back firmware)"},
		{"unknown firmware", policy, st(m(1, 3, "acme", c), m(0, 1, "chipco", c)), "firmware policy: layer 1: FWID sha256:" + c + " is not allowed"},
		{"layer vendor overrides", policy, st(m(1, 3, "acme", a), m(0, 1, "acme", c)), `firmware policy: layer 0: vendor "acme" is not "chipco"`},
		{"missing layer", policy, st(m(1, 3, "acme", a)), "firmware policy: layer 0: the certificate chain carries no TcbInfo for this layer"},
		{"forbidden flag", policy, st(m(1, 3, "acme", a, "debug"), m(0, 1, "chipco", c)), "firmware policy: layer 1: operational flag debug is set, which the policy forbids"},
		{"vendor not stated", policy, st(m(1, 3, "", a)), `firmware policy: layer 1: the TcbInfo states no vendor, the policy requires "acme"`},
		{"layer not stated", &firmware.Policy{Vendor: "acme"}, st(firmware.Measurement{Vendor: "x"}), `firmware policy: layer (unstated): vendor "x" is not "acme"`},
		{"svn not stated", policy, st(firmware.Measurement{Layer: i64(1), Vendor: "acme", Model: "m", FWIDs: fw(a)}, m(0, 1, "chipco", c)), "firmware policy: layer 1: the TcbInfo states no svn, the policy requires at least 3"},
		{"no FWID", &firmware.Policy{Layers: []firmware.LayerPolicy{{Layer: 1, AllowedFWIDs: fw(a)}}}, st(firmware.Measurement{Layer: i64(1)}), "firmware policy: layer 1: the TcbInfo carries no FWID, the policy allows only listed firmware"},
		{"every TcbInfo of a layer must pass", policy, st(m(1, 3, "acme", a), m(1, 3, "acme", c), m(0, 1, "chipco", c)), "firmware policy: layer 1: FWID sha256:" + c + " is not allowed"},
		{"long device strings are shortened", &firmware.Policy{Vendor: "acme"}, st(m(1, 1, strings.Repeat("x", 100)+"\n", a)), `firmware policy: layer 1: vendor "` + strings.Repeat("x", 64) + `…" is not "acme"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.policy != nil {
				if err := tc.policy.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			err := dice.Evaluate(tc.policy, tc.state)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var pe *dice.PolicyError
			if !errors.Is(err, dice.ErrPolicy) || !errors.As(err, &pe) {
				t.Fatalf("want a PolicyError, got %v", err)
			}
			if err.Error() != tc.want {
				t.Fatalf("message\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}
