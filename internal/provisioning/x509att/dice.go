package x509att

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/zdps/zdps/attestation/dice"
	x509v "github.com/zdps/zdps/attestation/x509"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// applyDICE reads the DICE evidence of the verified path into ev and
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
func applyDICE(res *x509v.Result, ev *evidence) {
	var policy *firmware.Policy
	switch {
	case res.Enrollment != nil:
		policy = res.Enrollment.FirmwarePolicy
	case res.Group != nil:
		policy = res.Group.FirmwarePolicy
	}
	st, err := dice.State(res.Chain)
	if err != nil {
		if policy != nil {
			ev.violation = "firmware policy: " + err.Error()
		}
		return
	}
	ev.dice = st
	if err := dice.Evaluate(policy, st); err != nil {
		ev.violation = err.Error()
		var pe *dice.PolicyError
		ev.rollback = errors.As(err, &pe) && pe.Rollback
	}
}

// evidence is what an X.509 chain proves beyond the identity: the leaf and
// signing certificate, and, for a DICE chain, the DeviceID key and
// firmware measurements with the firmware policy's verdict.
//
//   - a firmware policy violation ends the registration with status
//     failed, dps.CodeFirmwarePolicy and the violation as errorMessage;
//   - the record keeps the DICE state of the last successful
//     registration; the DeviceID key is the device's identity: when the
//     record holds one and the device presents another, the request is
//     unauthorized (another device claims the registration ID); deleting
//     the registration record lets a replacement device register;
//   - when the measurements change (a firmware update), the pipeline logs
//     an audit event with the old and the new measurements.
type evidence struct {
	port.NoEvidence
	leaf, signing *x509.Certificate
	dice          *firmware.DICEState
	violation     string
	rollback      bool
}

// Verdict refuses a device whose firmware the enrollment's policy refuses.
// The violation quotes measurements from the verified chain: digests,
// numbers, and vendor strings quoted and shortened by firmware.Quote,
// safe for a log line.
func (e *evidence) Verdict() *port.Verdict {
	if e.violation == "" {
		return nil
	}
	reason := "firmware policy"
	if e.rollback {
		reason = port.ReasonFirmwareRollback
	}
	return &port.Verdict{Code: dps.CodeFirmwarePolicy, Message: e.violation, Reason: reason,
		Attrs: []any{"firmware_violation", e.violation, "measurements", e.dice.Summary()}}
}

// Record keeps the certificate summary and the DICE state.
func (e *evidence) Record(rec, cur *enrollment.Registration) error {
	rec.X509 = port.X509Summary(e.leaf, e.signing)
	rec.DICE = nil
	if e.dice == nil {
		return nil
	}
	if cur != nil && cur.DICE != nil && cur.DICE.DeviceIDKey != "" && cur.DICE.DeviceIDKey != e.dice.DeviceIDKey {
		return port.Refuse("DICE DeviceID key differs from the registration's", fmt.Errorf("%w: the DICE DeviceID key is not the one this registration ID was provisioned with", port.ErrUnauthorized))
	}
	rec.DICE = e.dice.Clone()
	return nil
}
