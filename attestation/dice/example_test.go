package dice_test

import (
	"fmt"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/attestation/dice/dicesim"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// The device side states its measurements in a TcbInfo; the verifier side
// parses it and evaluates a firmware policy.
func Example() {
	layer, svn := int64(1), int64(2)
	fw := dicesim.Measure([]byte("firmware v2"))
	der, err := (&dice.TcbInfo{Vendor: "acme", Layer: &layer, SVN: &svn, FWIDs: []dice.FWID{fw}}).Marshal()
	if err != nil {
		panic(err)
	}

	t, err := dice.ParseTcbInfo(der)
	if err != nil {
		panic(err)
	}
	st := &firmware.DICEState{Measurements: []firmware.Measurement{dice.Measurement(t)}}
	minSVN := int64(3)
	policy := &firmware.Policy{Vendor: "acme", Layers: []firmware.LayerPolicy{{Layer: 1, MinSVN: &minSVN}}}
	fmt.Println(dice.Evaluate(policy, st))
	// Output: firmware policy: layer 1: svn 2 is below the minimum 3 (rolled-back firmware)
}
