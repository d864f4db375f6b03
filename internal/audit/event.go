package audit

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/zdps/zdps/pkg/dps"
	"time"
)

// Actions of provisioning decisions and management changes. A management
// change is "{resource}.{verb}" (enrollment.create, group.delete, ...).
const (
	ActionRegistrationAssigned = "registration.assigned"
	ActionRegistrationRefused  = "registration.refused"
	ActionRegistrationRenewed  = "registration.renewed"
	ActionRegistrationFailed   = "registration.failed"
	ActionFirmwareChanged      = "firmware.changed"
	ActionAlert                = "alert"
	ActionCheckpoint           = "audit.checkpoint"
)

// Outcomes of an event.
const (
	OutcomeSuccess = "success"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// Event is one audit record (its wire form, docs/audit.md).
type Event = dps.AuditEvent

// Bounds of an event, so that what a device controls cannot grow the
// trail without limit.
const (
	maxField   = 1024
	maxDetails = 32
)

// ErrInvalid wraps every refusal of an event.
var ErrInvalid = errors.New("audit: invalid event")

func validate(e *Event) error {
	if e.Action == "" || e.Outcome == "" || e.Actor == "" {
		return fmt.Errorf("%w: action, outcome and actor are required", ErrInvalid)
	}
	if len(e.Details) > maxDetails {
		return fmt.Errorf("%w: %d details (at most %d)", ErrInvalid, len(e.Details), maxDetails)
	}
	for _, s := range []string{e.Action, e.Outcome, e.Reason, e.Actor, e.Resource, e.RegistrationID, e.ETagBefore, e.ETagAfter, e.Source, e.Transport} {
		if len(s) > maxField {
			return fmt.Errorf("%w: a field over %d bytes", ErrInvalid, maxField)
		}
	}
	for k, v := range e.Details {
		if len(k) > 64 || len(v) > maxField {
			return fmt.Errorf("%w: detail %.64q too long", ErrInvalid, k)
		}
	}
	return nil
}

// NewID is a 32-hex-digit ID: the time in nanoseconds, then 64 random
// bits, so IDs sort by time and never collide across replicas.
func NewID(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	_, _ = rand.Read(b[8:]) // crypto/rand never fails on Linux
	return hex.EncodeToString(b[:])
}
