package x509att

import (
	x509v "github.com/zdps/zdps/attestation/x509"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/pkg/enrollment"
)

// applyDICE reads the DICE evidence of the verified path into id and
// evaluates the firmware policy of the enrollment that admitted the chain
// (the individual enrollment, else the group: the one the pipeline
// resolves to unless that is disabled, and a disabled enrollment refuses
// the device anyway).
//
// Only Result.Chain, the path crypto/x509 verified, is read: a
// certificate the device sent besides it is never a source of
// measurements. A DICE extension that does not parse (it can only be
// non-critical here: a critical one fails verification) violates any
// firmware policy and is otherwise ignored, as Azure DPS would ignore it.
func applyDICE(res *x509v.Result, id *provisioning.Identity) {
	var policy *enrollment.FirmwarePolicy
	switch {
	case res.Enrollment != nil:
		policy = res.Enrollment.FirmwarePolicy
	case res.Group != nil:
		policy = res.Group.FirmwarePolicy
	}
	st, err := dice.State(res.Chain)
	if err != nil {
		if policy != nil {
			id.FirmwareViolation = "firmware policy: " + err.Error()
		}
		return
	}
	id.DICE = st
	if err := dice.Evaluate(policy, st); err != nil {
		id.FirmwareViolation = err.Error()
	}
}
