package provisioning

import (
	"context"
	"time"

	"github.com/zdps/zdps/internal/provisioning/decision"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// This file reports the pipeline's decisions to internal/provisioning/decision,
// which writes the audit events and counts the metrics (Config.Audit,
// Config.Observer).

// facts is what r learned, as the trail and the metrics name it, but the
// issued certificate (withSerial).
func (r *registration) facts() decision.Facts {
	var f decision.Facts
	if r.req != nil {
		f.Request, f.RegistrationID, f.Source, f.Transport = true, r.req.RegistrationID, r.req.RemoteAddr, r.req.Transport
		f.Mechanism = Mechanism(r.req)
		if len(r.req.ClientCertificates) > 0 {
			f.ClientCertificate = r.req.ClientCertificates[0]
		}
	}
	if r.id != nil {
		f.Attested, f.Attestation, f.RenewalOf = true, r.id.Type, evidence(r.id).RenewalOf()
	}
	if r.t != nil {
		f.Resolved, f.Enrollment, f.Group = true, r.t.name, r.t.groupID()
	}
	f.OperationID, f.Verdict = r.opID, r.verdict
	return f
}

// withSerial is f with the serial of the certificate r issued. Only the
// run that issued it, or the request it handed its outcome to, may read
// it: a run that continues in the background writes it.
func (r *registration) withSerial(f decision.Facts) decision.Facts {
	if r.issued != nil {
		f.Serial = r.issued.Serial
	}
	return f
}

// recordAssigned writes the audit events of a persisted registration in
// its own transaction (decision.Assigned).
func (s *Service) recordAssigned(ctx context.Context, tx store.Tx, r *registration, rec, cur *enrollment.Registration) error {
	if s.cfg.Audit == nil {
		return nil
	}
	return decision.Assigned(ctx, tx, s.cfg.Audit, r.withSerial(r.facts()), rec, cur)
}

// decided reports a register request's answer (decision.Decided):
// counted, and audited unless persist did.
func (s *Service) decided(r *registration, op *enrollment.Operation, err error, start time.Time) {
	f := r.facts()
	if err == nil && op != nil && op.Status == enrollment.RegistrationAssigned {
		f = r.withSerial(f) // the run handed its outcome back: it is done with r
	}
	decision.Decided(s.cfg.Audit, s.cfg.Observer, f, op, err, time.Since(start))
}
