package decision

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
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

// Facts are what a registration had learned when it was decided.
type Facts struct {
	// Request is false when there was no request; then the three after
	// it are empty.
	Request        bool
	RegistrationID string
	Source         string
	Transport      string
	// ClientCertificate is the first TLS client certificate presented,
	// nil for none.
	ClientCertificate *x509.Certificate
	// Mechanism is the request's mechanism (for metrics when attestation
	// did not finish).
	Mechanism string
	// Attested: attestation proved Attestation (its type), a renewal of
	// RenewalOf when that is set.
	Attested    bool
	Attestation string
	RenewalOf   string
	// Resolved: the enrollment resolved to Enrollment (a registration or
	// group ID), of Group when it is a group's.
	Resolved   bool
	Enrollment string
	Group      string
	// OperationID names the answer; "" before one was made.
	OperationID string
	// Serial is the issued certificate's, "" when none was issued.
	Serial string
	// Verdict is the reason of the mechanism's verdict that failed the
	// registration, "" for none.
	Verdict string
}

// clientKey names the TLS client key a device presented: the first 16
// bytes of the SHA-256 of its SubjectPublicKeyInfo, hex. The detectors
// compare it across registrations of one ID (a cloned credential).
func (f *Facts) clientKey() string {
	if f.ClientCertificate == nil {
		return ""
	}
	sum := sha256.Sum256(f.ClientCertificate.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:16])
}

// event is the audit event of the decision, without action and outcome.
func (f *Facts) event() audit.Event {
	e := audit.Event{Actor: "device", Details: map[string]string{}}
	if f.Request {
		e.RegistrationID = f.RegistrationID
		e.Source, e.Transport = f.Source, f.Transport
		if k := f.clientKey(); k != "" {
			e.Details["clientKey"] = k
		}
	}
	if f.Attested {
		e.Details["attestation"] = f.Attestation
		if f.RenewalOf != "" {
			e.Details["renewalOf"] = f.RenewalOf
		}
	}
	if f.Resolved {
		e.Details["enrollment"] = f.Enrollment
		if f.Group != "" {
			e.Details["group"] = f.Group
		}
	}
	if f.OperationID != "" {
		e.Details["operationId"] = f.OperationID
	}
	if e.RegistrationID != "" {
		e.Resource = "registration/" + e.RegistrationID
	}
	return e
}

// Assigned writes the audit events of a persisted registration in its
// own transaction: assigned or renewed, and a firmware change. a may be
// nil (no trail).
func Assigned(ctx context.Context, tx store.Tx, a Auditor, f Facts, rec, cur *enrollment.Registration) error {
	if a == nil {
		return nil
	}
	e := f.event()
	e.Action, e.Outcome = audit.ActionRegistrationAssigned, audit.OutcomeSuccess
	if f.RenewalOf != "" {
		e.Action = audit.ActionRegistrationRenewed
	}
	e.ETagAfter = rec.ETag
	e.Details["hub"], e.Details["deviceId"], e.Details["substatus"] = rec.AssignedHub, rec.DeviceID, rec.Substatus
	if cur != nil {
		e.ETagBefore = cur.ETag
	}
	if f.Serial != "" {
		e.Details["serial"] = f.Serial
	}
	if err := a.Record(ctx, tx, e); err != nil {
		return err
	}
	if rec.DICE == nil || cur == nil || cur.DICE == nil || cur.DICE.Equal(rec.DICE) {
		return nil
	}
	fw := f.event()
	fw.Action, fw.Outcome = audit.ActionFirmwareChanged, audit.OutcomeSuccess
	fw.ETagBefore, fw.ETagAfter = e.ETagBefore, e.ETagAfter
	fw.Details["deviceIdKey"] = rec.DICE.DeviceIDKey
	fw.Details["oldMeasurements"] = clip(cur.DICE.Summary())
	fw.Details["newMeasurements"] = clip(rec.DICE.Summary())
	return a.Record(ctx, tx, fw)
}

func clip(s string) string {
	if len(s) > 1000 {
		return s[:1000] + "…"
	}
	return s
}

// ErrorClass is the class of a refused or failed request.
func ErrorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, port.ErrThrottled):
		return ClassThrottled
	case errors.Is(err, port.ErrUnauthorized):
		switch port.ReasonOf(err) {
		case "certificate revoked":
			return ClassRenewalRevoked
		case "operational certificate not recorded as issued", "operational certificate issued to another registration":
			return ClassRenewalUnknown
		}
		return ClassUnauthorized
	case errors.Is(err, port.ErrInvalid):
		return ClassInvalid
	case errors.Is(err, port.ErrNotFound):
		return ClassNotFound
	case errors.Is(err, store.ErrBusy):
		return ClassBusy
	}
	return ClassInternal
}

// Decided counts a register request's answer (op, or the error err) and
// audits what Assigned did not: refusals, failures and disabled answers.
// a and o may be nil.
func Decided(a Auditor, o Observer, f Facts, op *enrollment.Operation, err error, d time.Duration) {
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
			switch f.Verdict {
			case "":
			case port.ReasonFirmwareRollback:
				class = ClassFirmwareDowngrade
			default:
				class = ClassFirmwarePolicy
			}
		}
	}
	if o != nil {
		att := ""
		if f.Attested {
			att = f.Attestation
			if f.RenewalOf != "" {
				att = "renewal"
			}
		} else if f.Request {
			att = f.Mechanism
		}
		o.Registration(att, f.Transport, outcome, class, d)
		if class == ClassThrottled {
			o.Throttled(throttleLimit(err))
		}
		if outcome == enrollment.RegistrationAssigned && f.Serial != "" {
			ev := "issued"
			if f.Attested && f.RenewalOf != "" {
				ev = "renewed"
			}
			o.Certificate(ev, 1)
		}
	}
	if a == nil || outcome == enrollment.RegistrationAssigned || outcome == enrollment.RegistrationAssigning {
		return
	}
	e := f.event()
	e.Action, e.Outcome, e.Reason = audit.ActionRegistrationRefused, audit.OutcomeRefused, class
	if outcome == "error" || outcome == enrollment.RegistrationFailed {
		e.Action, e.Outcome = audit.ActionRegistrationFailed, audit.OutcomeFailed
	}
	if reason := port.ReasonOf(err); reason != "" {
		e.Details["refusal"] = reason
	}
	a.Add(e)
}

// throttleLimit names the limit that refused a request.
func throttleLimit(err error) string {
	var te *limits.ThrottledError
	if errors.As(err, &te) {
		return strings.ReplaceAll(te.Limit, " ", "-")
	}
	return "assigning"
}
