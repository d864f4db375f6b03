package provisioning

import (
	"context"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// refuseVerdict answers a registration its mechanism's evidence refuses
// (a DICE firmware policy violation, x509att): a stored failed operation
// and no record, so the device's earlier record (hub, measurements) is
// untouched.
func (s *Service) refuseVerdict(ctx context.Context, r *registration, v *port.Verdict) (*enrollment.Operation, error) {
	r.verdict = v.Reason
	op := s.book.Failed(r.opID, r.req.RegistrationID, v.Code, v.Message)
	if err := s.book.Final(ctx, op); err != nil {
		return nil, err
	}
	r.log.WarnContext(ctx, "registration failed", append([]any{"outcome", OutcomeFailed, "reason", v.Reason}, v.Attrs...)...)
	return op, nil
}

// auditFirmware logs the audit event of a firmware change: the device
// registered before with other measurements.
func (s *Service) auditFirmware(ctx context.Context, rec *enrollment.Registration, old *firmware.DICEState) {
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
