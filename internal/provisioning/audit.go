package provisioning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Auditor records the pipeline's decisions (internal/audit): Record in
// the transaction that stores the decision, Add for a refusal, which
// stores nothing and so has no transaction to join.
type Auditor interface {
	Record(ctx context.Context, tx store.Tx, e audit.Event) error
	Add(e audit.Event)
}

// Observer counts the pipeline's decisions (internal/metrics).
type Observer interface {
	Registration(attestation, transport, outcome, errorClass string, d time.Duration)
	Certificate(event string, n int)
	Throttled(limit string)
	Allocation(hub, policy string)
}

// ReasonFirmwareRollback is the Verdict reason of a DICE device whose
// firmware SVN is below its policy's minimum.
const ReasonFirmwareRollback = "firmware rollback"

// Reason classes of audit events and metrics: a few fixed words, never
// a message.
const (
	ClassUnauthorized      = "unauthorized"
	ClassInvalid           = "invalid"
	ClassThrottled         = "throttled"
	ClassNotFound          = "not-found"
	ClassBusy              = "busy"
	ClassInternal          = "internal"
	ClassDisabled          = "disabled"
	ClassAllocation        = "allocation-failed"
	ClassFirmwarePolicy    = "firmware-policy"
	ClassFirmwareDowngrade = "firmware-downgrade"
	ClassRenewalRevoked    = "renewal-revoked"
	ClassRenewalUnknown    = "renewal-unknown"
)

// ErrorClass is the class of a refused or failed request.
func ErrorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrThrottled):
		return ClassThrottled
	case errors.Is(err, ErrUnauthorized):
		switch ReasonOf(err) {
		case "certificate revoked":
			return ClassRenewalRevoked
		case "operational certificate not recorded as issued", "operational certificate issued to another registration":
			return ClassRenewalUnknown
		}
		return ClassUnauthorized
	case errors.Is(err, ErrInvalid):
		return ClassInvalid
	case errors.Is(err, ErrNotFound):
		return ClassNotFound
	case errors.Is(err, store.ErrBusy):
		return ClassBusy
	}
	return ClassInternal
}

// clientKey names the TLS client key a device presented: the first 16
// bytes of the SHA-256 of its SubjectPublicKeyInfo, hex. The detectors
// compare it across registrations of one ID (a cloned credential).
func clientKey(req *Request) string {
	if req == nil || len(req.ClientCertificates) == 0 {
		return ""
	}
	sum := sha256.Sum256(req.ClientCertificates[0].RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:16])
}

// event is the audit event of r's decision, without action and outcome.
func (s *Service) event(r *registration) audit.Event {
	e := audit.Event{Actor: "device", Details: map[string]string{}}
	if r.req != nil {
		e.RegistrationID = r.req.RegistrationID
		e.Source, e.Transport = r.req.RemoteAddr, r.req.Transport
		if k := clientKey(r.req); k != "" {
			e.Details["clientKey"] = k
		}
	}
	if r.id != nil {
		e.Details["attestation"] = r.id.Type
		if serial := r.id.evidence().RenewalOf(); serial != "" {
			e.Details["renewalOf"] = serial
		}
	}
	if r.t != nil {
		e.Details["enrollment"] = r.t.name
		if g := r.t.groupID(); g != "" {
			e.Details["group"] = g
		}
	}
	if r.opID != "" {
		e.Details["operationId"] = r.opID
	}
	if e.RegistrationID != "" {
		e.Resource = "registration/" + e.RegistrationID
	}
	return e
}

// recordAssigned writes the audit events of a persisted registration in
// its own transaction: assigned or renewed, and a firmware change.
func (s *Service) recordAssigned(ctx context.Context, tx store.Tx, r *registration, rec, cur *enrollment.Registration) error {
	if s.cfg.Audit == nil {
		return nil
	}
	e := s.event(r)
	e.Action, e.Outcome = audit.ActionRegistrationAssigned, audit.OutcomeSuccess
	if r.id.evidence().RenewalOf() != "" {
		e.Action = audit.ActionRegistrationRenewed
	}
	e.ETagAfter = rec.ETag
	e.Details["hub"], e.Details["deviceId"], e.Details["substatus"] = rec.AssignedHub, rec.DeviceID, rec.Substatus
	if cur != nil {
		e.ETagBefore = cur.ETag
	}
	if r.issued != nil {
		e.Details["serial"] = r.issued.Serial
	}
	if err := s.cfg.Audit.Record(ctx, tx, e); err != nil {
		return err
	}
	if rec.DICE == nil || cur == nil || cur.DICE == nil || cur.DICE.Equal(rec.DICE) {
		return nil
	}
	f := s.event(r)
	f.Action, f.Outcome = audit.ActionFirmwareChanged, audit.OutcomeSuccess
	f.ETagBefore, f.ETagAfter = e.ETagBefore, e.ETagAfter
	f.Details["deviceIdKey"] = rec.DICE.DeviceIDKey
	f.Details["oldMeasurements"] = clip(cur.DICE.Summary())
	f.Details["newMeasurements"] = clip(rec.DICE.Summary())
	return s.cfg.Audit.Record(ctx, tx, f)
}

func clip(s string) string {
	if len(s) > 1000 {
		return s[:1000] + "…"
	}
	return s
}

// decided counts a register request's answer and audits what persist did
// not: refusals, failures and disabled answers.
func (s *Service) decided(r *registration, op *enrollment.Operation, err error, start time.Time) {
	outcome, class := "", ErrorClass(err)
	switch {
	case err != nil && (class == ClassInternal || class == ClassBusy):
		outcome = "error"
	case err != nil:
		outcome = "refused"
	case op == nil:
		return
	default:
		outcome = op.Status
		switch op.Status {
		case enrollment.RegistrationDisabled:
			class = ClassDisabled
		case enrollment.RegistrationFailed:
			class = ClassAllocation
			switch r.verdict {
			case "":
			case ReasonFirmwareRollback:
				class = ClassFirmwareDowngrade
			default:
				class = ClassFirmwarePolicy
			}
		}
	}
	if o := s.cfg.Observer; o != nil {
		att, transport := "", ""
		if r.id != nil {
			att = r.id.Type
			if r.id.evidence().RenewalOf() != "" {
				att = "renewal"
			}
		} else if r.req != nil {
			att = Mechanism(r.req)
		}
		if r.req != nil {
			transport = r.req.Transport
		}
		o.Registration(att, transport, outcome, class, time.Since(start))
		if class == ClassThrottled {
			o.Throttled(throttleLimit(err))
		}
		if outcome == enrollment.RegistrationAssigned && r.issued != nil {
			ev := "issued"
			if r.id != nil && r.id.evidence().RenewalOf() != "" {
				ev = "renewed"
			}
			o.Certificate(ev, 1)
		}
	}
	if s.cfg.Audit == nil || outcome == enrollment.RegistrationAssigned || outcome == enrollment.RegistrationAssigning {
		return
	}
	e := s.event(r)
	e.Action, e.Outcome, e.Reason = audit.ActionRegistrationRefused, audit.OutcomeRefused, class
	if outcome == "error" || outcome == enrollment.RegistrationFailed {
		e.Action, e.Outcome = audit.ActionRegistrationFailed, audit.OutcomeFailed
	}
	if err != nil {
		if reason := ReasonOf(err); reason != "" {
			e.Details["refusal"] = reason
		}
	}
	s.cfg.Audit.Add(e)
}

// throttleLimit names the limit that refused a request.
func throttleLimit(err error) string {
	var te *limits.ThrottledError
	if errors.As(err, &te) {
		return strings.ReplaceAll(te.Limit, " ", "-")
	}
	return "assigning"
}
