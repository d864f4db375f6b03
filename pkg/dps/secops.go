package dps

import (
	"errors"
	"fmt"
	"time"
)

// The security operations resources of the service API (zdps extensions,
// docs/audit.md): audit events, the trail's verification, alerts and the
// posture report. internal/audit, internal/detect and internal/posture
// use these types as their own, so the wire form is written once.

// AuditEvent is one audit record.
type AuditEvent struct {
	// ID is unique and sorts by time of recording.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Action says what happened: registration.assigned|renewed|refused|
	// failed, firmware.changed, alert, alert.acknowledge, audit.checkpoint,
	// audit.dropped, or "{resource}.create|update|delete" for management
	// changes.
	Action string `json:"action"`
	// Outcome is success, refused or failed.
	Outcome string `json:"outcome"`
	// Reason is a class (unauthorized, throttled, disabled, ...), never
	// a message a device could fill; for an alert, the rule that fired.
	Reason string `json:"reason,omitempty"`
	// Actor is who acted: "device", "policy:NAME", a signed-in user,
	// "detector", "retention".
	Actor string `json:"actor"`
	// Resource is the changed resource, e.g. "enrollment/dev-1".
	Resource       string `json:"resource,omitempty"`
	RegistrationID string `json:"registrationId,omitempty"`
	// ETagBefore and ETagAfter are the resource's ETags around the change
	// ("" when it did not exist before, or no longer exists after).
	ETagBefore string `json:"etagBefore,omitempty"`
	ETagAfter  string `json:"etagAfter,omitempty"`
	// Source is the client's network address, Transport https, mqtt,
	// mqtt-ws.
	Source    string `json:"source,omitempty"`
	Transport string `json:"transport,omitempty"`
	// Details are further facts (hub, device ID, serial, measurements),
	// bounded in number and size; never secrets.
	Details map[string]string `json:"details,omitempty"`
}

// SealedAuditEvent is a chained event with its sequence number.
type SealedAuditEvent struct {
	Seq uint64 `json:"seq"`
	AuditEvent
}

// AuditPage is the answer of GET /audit.
type AuditPage struct {
	Events []SealedAuditEvent `json:"events"`
	// Next is the sequence to pass as after for the next page; it equals
	// the request's after when nothing more was there.
	Next uint64 `json:"next"`
}

// ErrAuditTampered is wrapped by an AuditProblem.
var ErrAuditTampered = errors.New("audit: the trail does not verify")

// AuditProblem is the first place where the trail does not verify.
type AuditProblem struct {
	// Kind is edited, deleted, inserted, head or truncated.
	Kind string `json:"kind"`
	// Seq is the sequence where the problem is; EventID the event there,
	// when one could be read.
	Seq     uint64 `json:"seq"`
	EventID string `json:"eventId,omitempty"`
	Detail  string `json:"detail"`
}

func (p *AuditProblem) Error() string {
	s := fmt.Sprintf("audit: %s at sequence %d", p.Kind, p.Seq)
	if p.EventID != "" {
		s += " (event " + p.EventID + ")"
	}
	return s + ": " + p.Detail
}

// Unwrap makes errors.Is(err, ErrAuditTampered) hold.
func (p *AuditProblem) Unwrap() error { return ErrAuditTampered }

// AuditReport is the answer of GET /audit/verify.
type AuditReport struct {
	// From is the first sequence checked (after the checkpoint), To the
	// signed head's.
	From    uint64 `json:"from"`
	To      uint64 `json:"to"`
	Entries int    `json:"entries"`
	// Pending are recorded events not yet chained (not covered).
	Pending int `json:"pending"`
	// Problem is nil when the trail verifies.
	Problem *AuditProblem `json:"problem,omitempty"`
}

// Alert is a stored alert of an anomaly rule.
type Alert struct {
	ID             string            `json:"id"`
	Rule           string            `json:"rule"`
	Severity       string            `json:"severity"`
	Key            string            `json:"key"`
	RegistrationID string            `json:"registrationId,omitempty"`
	Group          string            `json:"group,omitempty"`
	Time           time.Time         `json:"time"`
	Evidence       map[string]string `json:"evidence"`
	EventIDs       []string          `json:"eventIds"`
	// Status is open or acknowledged.
	Status string `json:"status"`
	// Response is what was done automatically ("" when nothing).
	Response       string    `json:"response,omitempty"`
	AcknowledgedBy string    `json:"acknowledgedBy,omitempty"`
	AcknowledgedAt time.Time `json:"acknowledgedAt,omitzero"`
	ETag           string    `json:"etag,omitempty"`
}

// PostureFinding is one thing to fix.
type PostureFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Title    string `json:"title"`
	// Count is how many things it affects; Example names one.
	Count   int    `json:"count"`
	Example string `json:"example,omitempty"`
	// Remedy is the command (or flag) that fixes it.
	Remedy string `json:"remedy"`
}

// PostureReport is the answer of GET /posture.
type PostureReport struct {
	Time     time.Time        `json:"time"`
	Score    int              `json:"score"`
	Findings []PostureFinding `json:"findings"`
}
