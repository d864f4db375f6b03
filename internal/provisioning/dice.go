package provisioning

import (
	"context"
	"fmt"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// DICE handling in the pipeline (the X.509 attestor fills
// Identity.DICE and Identity.FirmwareViolation from the verified chain):
//
//   - a firmware policy violation ends the registration with status
//     failed, dps.CodeFirmwarePolicy and the violation as errorMessage;
//     like every failed outcome it stores only its operation, so the
//     device's earlier record (hub, measurements) is untouched;
//   - the record keeps the DICE state of the last successful
//     registration (Registration.DICE); a renewal, which presents no DICE
//     chain, keeps the one it had;
//   - the DeviceID key is the device's identity: when the record holds a
//     DeviceID key and the device presents a different one, the request
//     is unauthorized (another device claims the registration ID);
//     deleting the registration record lets a replacement device register;
//   - when the measurements change (a firmware update), the pipeline logs
//     an audit event with the old and the new measurements.

// refuseFirmware answers a registration whose firmware the enrollment's
// policy refuses: a stored failed operation. It returns nil, nil when the
// identity carries no violation.
func (s *Service) refuseFirmware(ctx context.Context, r *registration) (*enrollment.Operation, error) {
	op := s.failedOperation(r.opID, r.req.RegistrationID, dps.CodeFirmwarePolicy, r.id.FirmwareViolation)
	if err := s.finalOperation(ctx, op); err != nil {
		return nil, err
	}
	// The violation quotes measurements from the verified chain: digests,
	// numbers, and vendor strings quoted and shortened by
	// enrollment.Quote, safe for a log line.
	r.log.WarnContext(ctx, "registration failed", "outcome", OutcomeFailed, "reason", "firmware policy",
		"firmware_violation", r.id.FirmwareViolation, "measurements", r.id.DICE.Summary())
	return op, nil
}

// diceRecord returns the DICE state the new record keeps, or an error
// wrapping ErrUnauthorized when the device presents another DeviceID key
// than the record's. It runs inside the persist transaction.
func diceRecord(id *Identity, cur *enrollment.Registration) (*enrollment.DICEState, error) {
	var old *enrollment.DICEState
	if cur != nil {
		old = cur.DICE
	}
	if id.DICE == nil {
		if id.Renewal != nil {
			return old.Clone(), nil
		}
		return nil, nil
	}
	if old != nil && old.DeviceIDKey != "" && old.DeviceIDKey != id.DICE.DeviceIDKey {
		return nil, Refuse("DICE DeviceID key differs from the registration's", fmt.Errorf("%w: the DICE DeviceID key is not the one this registration ID was provisioned with", ErrUnauthorized))
	}
	return id.DICE.Clone(), nil
}

// auditFirmware logs the audit event of a firmware change: the device
// registered before with other measurements.
func (s *Service) auditFirmware(ctx context.Context, rec *enrollment.Registration, old *enrollment.DICEState) {
	if rec == nil || rec.DICE == nil || old == nil || old.Equal(rec.DICE) {
		return
	}
	s.log.InfoContext(ctx, "audit",
		"action", "firmware-change",
		"resource", "registration",
		"id", rec.RegistrationID,
		"registration_id", rec.RegistrationID,
		"device_id", rec.DeviceID,
		"hub", rec.AssignedHub,
		"deviceid_key", rec.DICE.DeviceIDKey,
		"old_measurements", old.Summary(),
		"new_measurements", rec.DICE.Summary())
}
