package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/operations"
	"github.com/zdps/zdps/internal/provisioning/placement"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// Outcomes logged under the key "outcome".
const (
	OutcomeAssigned     = "assigned"
	OutcomeFailed       = "failed"
	OutcomeDisabled     = "disabled"
	OutcomeUnauthorized = "unauthorized"
	OutcomeInvalid      = "invalid"
	OutcomeNotFound     = "notFound"
	OutcomeError        = "error"
	OutcomeThrottled    = "throttled"
)

// registration is one register request on its way through the pipeline:
// what each step learned, passed to the next (pipeline order in Register
// and assign).
type registration struct {
	req *port.Request
	log *slog.Logger
	// opID is the operation every answer of this request names.
	opID string
	// id is what attestation proved, t the enrollment it resolved to and
	// cur the device's record before this registration (nil at first
	// registration; a snapshot for the allocator, persist reads it again).
	id  *port.Identity
	t   *target
	cur *enrollment.Registration
	// reads is what prefetchStep read for the steps (nil: nothing).
	reads *requestReads
	// deadline, when not zero, is that of a run that may have been handed
	// to the background (async.go): persist refuses to commit after it.
	deadline time.Time
	// dec is the allocation, issued the certificate (nil without a CSR).
	dec    allocation.Decision
	issued *port.Issued
	// verdict is the reason of a mechanism's verdict that failed the
	// registration (audit.go classifies it).
	verdict string
}

// Register runs the pipeline for one register request:
//
//	attest → resolve → refuse (disabled, firmware) → allocate → issue → persist → answer
//
// with what attest, resolve and the background check read of the device
// read before them in one go (prefetchStep).
//
// It returns the stored operation, whose Status is assigned, failed (an
// allocation failure or a firmware refusal, with ErrorCode and
// ErrorMessage) or disabled; or, when Config.AssignWait is set and
// allocation, issuance and persisting take longer than that, assigning:
// the registration then completes in the background under the same
// operation ID, which polls read (async.go). ErrThrottled: another
// registration of the device is still assigning, or a *limits.ThrottledError:
// one of Config.Limits refused it. Request faults return an error
// wrapping ErrUnauthorized or ErrInvalid and store nothing; any other
// error is a server fault, and then nothing was stored either (a
// certificate whose write failed is never returned).
func (s *Service) Register(ctx context.Context, req *port.Request) (op *enrollment.Operation, err error) {
	r := &registration{req: req, log: s.requestLog(req)}
	start := time.Now()
	defer func() {
		if err != nil {
			s.logFailure(ctx, r.log, "register", err)
		}
		s.decided(r, op, err, start)
	}()
	if err := s.checkSource(ctx, req); err != nil {
		return nil, err
	}
	ctx = s.prefetchStep(ctx, r)
	if err := s.attestStep(ctx, r); err != nil {
		return nil, err
	}
	if err := s.resolveStep(ctx, r); err != nil {
		return nil, err
	}
	if op, err := s.refuse(ctx, r); op != nil || err != nil {
		return op, err
	}
	if s.cfg.AssignWait > 0 {
		return s.assignAsync(ctx, r)
	}
	return s.assign(ctx, r)
}

// attestStep proves who the device is (the mechanism's attestor) and that
// a TPM's proof is fresh.
func (s *Service) attestStep(ctx context.Context, r *registration) error {
	var id *port.Identity
	if r.req != nil {
		id = r.req.Attested.Reuse(r.req, s.now())
	}
	if id == nil {
		var err error
		if id, err = s.attest(ctx, r.req); err != nil {
			return err
		}
	}
	r.id, r.log = id, r.log.With("attestation", id.Type)
	if serial := evidence(id).RenewalOf(); serial != "" {
		r.log = r.log.With("renewal_of", serial)
	}
	return evidence(id).Check()
}

// resolveStep finds the enrollment that applies, applies the register
// limits (throttle.go), names the operation, and reads the device's
// current record.
func (s *Service) resolveStep(ctx context.Context, r *registration) error {
	t, err := s.resolve(ctx, r.id)
	if err != nil {
		return err
	}
	r.t, r.log = t, r.log.With("enrollment", t.name)
	// Counted only now that the device proved who it is, and before
	// anything is stored (a disabled answer stores an operation too).
	if err := s.checkRegister(r.id.RegistrationID, t); err != nil {
		return err
	}
	if r.opID, err = s.newOperationID(); err != nil {
		return err
	}
	r.cur = r.reads.cur // prefetchStep read it
	return r.reads.curErr
}

// refuse answers, with a final operation and no record, a device whose
// enrollment is disabled or whose firmware the enrollment refuses; it
// refuses a CSR when this instance issues no certificates, and checks a
// renewal's preconditions (a renewal keeps its hub and device ID). It
// returns a nil operation when the registration goes on.
func (s *Service) refuse(ctx context.Context, r *registration) (*enrollment.Operation, error) {
	verdict := evidence(r.id).Verdict()
	switch {
	case r.t.disabled:
		op := s.disabledOperation(r.opID, r.req.RegistrationID)
		if err := s.book.Final(ctx, op); err != nil {
			return nil, err
		}
		r.log.InfoContext(ctx, "registration refused", "outcome", OutcomeDisabled)
		return op, nil
	case verdict != nil:
		return s.refuseVerdict(ctx, r, verdict)
	case len(r.req.CSR) > 0 && s.cfg.Issuer == nil:
		return nil, port.Refuse("certificate issuance not enabled", fmt.Errorf("%w: certificate issuance is not enabled on this instance", port.ErrInvalid))
	case evidence(r.id).RenewalOf() != "":
		return nil, renewing(r.req, evidence(r.id).RenewalOf(), r.t, r.cur)
	}
	return nil, nil
}

// assign is the part of Register that may be slow, outside any
// transaction: allocate (a custom webhook may take seconds), issue,
// persist, answer.
func (s *Service) assign(ctx context.Context, r *registration) (*enrollment.Operation, error) {
	err := s.allocateStep(ctx, r)
	if allocation.IsFailure(err) {
		return s.failAllocation(ctx, r, err)
	}
	if err != nil {
		return nil, err
	}
	if err := s.issue(ctx, r); err != nil {
		return nil, err
	}
	op, err := s.persist(ctx, r)
	if errors.Is(err, placement.ErrHubFull) {
		return s.failAllocation(ctx, r, err)
	}
	if err != nil {
		return nil, err
	}
	return s.answer(ctx, r, op), nil
}

// allocateStep asks the allocation policy for a hub.
func (s *Service) allocateStep(ctx context.Context, r *registration) (err error) {
	r.dec, err = s.allocate(ctx, r.t, r.req, r.id, r.cur)
	if err == nil && s.cfg.Observer != nil {
		policy := r.t.spec.AllocationPolicy
		if policy == "" {
			policy = "default" // the instance's; not read again for a label
		}
		s.cfg.Observer.Allocation(r.dec.Hub, policy)
	}
	return err
}

// issue signs the operational certificate when the request carries a CSR.
func (s *Service) issue(ctx context.Context, r *registration) error {
	if len(r.req.CSR) == 0 {
		return nil
	}
	if s.cfg.Issuer == nil {
		return port.Refuse("certificate issuance not enabled", fmt.Errorf("%w: certificate issuance is not enabled on this instance", port.ErrInvalid))
	}
	issued, err := s.cfg.Issuer.Issue(ctx, r.req.CSR, port.LeafPolicy{RegistrationID: r.req.RegistrationID, DeviceID: r.t.deviceID, Validity: s.cfg.CertificateValidity})
	if err != nil {
		return err
	}
	if issued == nil || issued.Serial == "" || len(issued.Chain) == 0 {
		return errors.New("provisioning: issuer returned no certificate")
	}
	r.issued = issued
	return nil
}

// answer logs the outcome of a persisted registration and returns its
// operation: assigned, or disabled when the enrollment was disabled
// after it resolved (revocation_guard.go).
func (s *Service) answer(ctx context.Context, r *registration, op *enrollment.Operation) *enrollment.Operation {
	if op.Status == enrollment.RegistrationDisabled {
		r.log.InfoContext(ctx, "registration refused", "outcome", OutcomeDisabled, "reason", "enrollment disabled during registration")
		return op
	}
	attrs := []any{"outcome", OutcomeAssigned, "hub", op.Registration.AssignedHub, "substatus", op.Registration.Substatus, "operation_id", op.OperationID}
	if r.issued != nil {
		attrs = append(attrs, "certificate_serial", r.issued.Serial)
	}
	r.log.InfoContext(ctx, "registration assigned", attrs...)
	return op
}

// persist writes the record, the certificate and the operation in one
// Update. The function may run more than once (batching): it builds every
// value afresh from what it reads through tx.
func (s *Service) persist(ctx context.Context, r *registration) (*enrollment.Operation, error) {
	opID, deadline, req, id, t, dec, issued := r.opID, r.deadline, r.req, r.id, r.t, r.dec, r.issued
	// The device is answered only a custom allocation webhook's payload, as
	// on Azure; its own payload is allocation input, never echoed (the C
	// SDK would hand it to the application as if the service sent it).
	payload := dec.Payload
	var op *enrollment.Operation
	var oldDICE *firmware.DICEState
	uncapped := s.place.Uncapped(ctx, dec.Hub)
	// A conditional transaction (store.Conditional): on PostgreSQL it runs
	// at READ COMMITTED without predicate locks, so registrations of
	// different devices never abort each other. What it relies on holds
	// all the same: the record, the certificate, the TPM challenge and the
	// operation are written by compare-and-swap on what it read; the
	// enrollment or group is locked before the revocation jobs are read
	// (revocation_guard.go); hub capacity is counted under the hub's
	// exclusive lock (placement.Placer.CheckCapacity).
	err := s.st.Backend.Update(store.Conditional(ctx), func(tx store.Tx) error {
		if !deadline.IsZero() && !s.now().Before(deadline) {
			return errAssignTimeout // a poll may have answered failed already
		}
		// What the transaction reads, in one round trip where the backend
		// can (PostgreSQL): the enrollment's lock comes before the
		// revocation jobs (revocation_guard.go).
		if err := store.Prefetch(ctx, tx, persistReads(req.RegistrationID, t, opID)...); err != nil {
			return err
		}
		regs := s.st.Registrations.In(tx)
		cur, err := regs.Get(ctx, req.RegistrationID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			cur = nil
		case err != nil:
			return err
		}
		// The enrollment may have been deleted or disabled since resolve
		// (revocation_guard.go).
		disabled, err := s.enrollmentGone(ctx, tx, req.RegistrationID, t, cur)
		if err != nil {
			return err
		}
		if disabled {
			o := s.disabledOperation(opID, req.RegistrationID)
			if err := s.book.Close(ctx, tx, o); err != nil {
				return err
			}
			op = o
			return nil
		}
		ev := evidence(id)
		if err := ev.Claim(ctx, tx); err != nil {
			return err
		}
		if err := checkRenewal(ev.RenewalOf(), cur); err != nil {
			return err
		}
		if oldDICE = nil; cur != nil {
			oldDICE = cur.DICE
		}
		hub, sub := placement.NextState(cur, dec.Hub, t.reprov)
		rec := &enrollment.Registration{
			RegistrationID:    req.RegistrationID,
			DeviceID:          t.deviceID,
			AssignedHub:       hub,
			InitialHub:        hub,
			Status:            enrollment.RegistrationAssigned,
			Substatus:         sub,
			AttestationType:   id.Type,
			EnrollmentGroupID: t.groupID(),
			Payload:           cloneRaw(payload),
			InitialTwin:       initialTwin(t, dec),
		}
		// What the mechanism keeps (X.509 summary, DICE state); it may
		// refuse (another DICE DeviceID key).
		if err := ev.Record(rec, cur); err != nil {
			return err
		}
		if err := s.place.CheckCapacity(ctx, tx, hub, placement.CurrentHub(cur), uncapped); err != nil {
			return err
		}
		if ev.RenewalOf() != "" && len(payload) == 0 {
			rec.Payload = cloneRaw(cur.Payload) // a renewal asks no webhook: it keeps the last webhook payload
		}
		cond := store.Condition{IfNoneMatch: true}
		if cur != nil {
			cond = store.Condition{IfMatch: cur.ETag}
			rec.RegistrationID = cur.RegistrationID // keep the spelling of the first registration
			rec.CertificateSerials = slices.Clone(cur.CertificateSerials)
			rec.CertificateExpiry = maps.Clone(cur.CertificateExpiry)
			if placement.Assigned(cur) && cur.InitialHub != "" {
				rec.InitialHub = cur.InitialHub
			}
		}
		if issued != nil {
			// Only the newest unexpired serials stay (renew.go).
			if rec.CertificateSerials, rec.CertificateExpiry, err = s.renewableSerials(ctx, tx, cur, issued, s.now()); err != nil {
				return err
			}
			c := &enrollment.Certificate{
				Serial:         issued.Serial,
				RegistrationID: rec.RegistrationID,
				DeviceID:       rec.DeviceID,
				OperationID:    opID,
				NotBefore:      issued.NotBefore.UTC(),
				NotAfter:       issued.NotAfter.UTC(),
				Chain:          issued.Chain,
			}
			if _, err := s.certs.In(tx).Put(ctx, c, store.Condition{IfNoneMatch: true}); err != nil {
				return fmt.Errorf("provisioning: store certificate: %w", err)
			}
		}
		if _, err := regs.Put(ctx, rec, cond); err != nil {
			return fmt.Errorf("provisioning: store registration: %w", err)
		}
		if err := s.recordAssigned(ctx, tx, r, rec, cur); err != nil {
			return err
		}
		o := s.book.New(opID, rec.RegistrationID, enrollment.RegistrationAssigned)
		snap := *rec
		o.Registration = &snap
		if issued != nil {
			// The record keeps the serial; the chain (about 2.5 KB) is in
			// the certificate record, where a poll reads it (status.go).
			o.IssuedCertificateSerial = issued.Serial
		}
		ev.Answer(o)
		if err := s.book.Close(ctx, tx, o); err != nil {
			return err
		}
		if issued != nil {
			o.IssuedCertificateChain = issued.Chain // the answer has it
		}
		op = o
		return nil
	})
	if err != nil {
		return nil, err
	}
	if op.Status == enrollment.RegistrationAssigned {
		s.auditFirmware(ctx, op.Registration, oldDICE)
	}
	return op, nil
}

// persistReads are the keys persist reads of a registration, for
// store.Prefetch: the enrollment's lock first, so that every plain read
// after it (record, revocation jobs, operation) is one statement on
// PostgreSQL and sees what committed before the lock was granted.
func persistReads(regID string, t *target, opID string) []store.Read {
	var reads []store.Read
	switch {
	case t.individual != nil:
		reads = append(reads, store.Read{Bucket: store.BucketEnrollments, Key: enrollment.Key(t.individual.RegistrationID), Lock: true})
	case t.group != nil:
		reads = append(reads, store.Read{Bucket: store.BucketGroups, Key: enrollment.Key(t.group.EnrollmentGroupID), Lock: true})
	}
	reads = append(reads,
		store.Read{Bucket: store.BucketRegistrations, Key: enrollment.Key(regID)},
		store.Read{Bucket: revocation.BucketRevocationRegistrations, Key: enrollment.Key(regID)})
	if g := t.groupID(); g != "" {
		reads = append(reads, store.Read{Bucket: revocation.BucketRevocationSweeps, Key: enrollment.Key(g)})
	}
	return append(reads,
		store.Read{Bucket: operations.Bucket, Key: (&enrollment.Operation{OperationID: opID}).StoreKey()},
		store.Read{Bucket: operations.BucketCurrent, Key: enrollment.Key(regID)},
	)
}

// initialTwin is the twin recorded for the hub: the custom webhook's,
// else the enrollment's, else none.
func initialTwin(t *target, dec allocation.Decision) json.RawMessage {
	if len(dec.InitialTwin) > 0 {
		return cloneRaw(dec.InitialTwin)
	}
	it := t.spec.InitialTwin
	if it == nil {
		return nil
	}
	b, err := json.Marshal(it)
	if err != nil || string(b) == "{}" {
		return nil
	}
	return b
}

func cloneRaw(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	return slices.Clone(m)
}

// disabledOperation is the final operation of a device whose enrollment
// or group is disabled: no record, no certificate.
func (s *Service) disabledOperation(opID, registrationID string) *enrollment.Operation {
	op := s.book.New(opID, registrationID, enrollment.RegistrationDisabled)
	op.Registration = &enrollment.Registration{RegistrationID: registrationID, Status: enrollment.RegistrationDisabled}
	return op
}

// evidence is id's Evidence, port.NoEvidence when it has none.
func evidence(id *port.Identity) port.Evidence {
	if id.Evidence == nil {
		return port.NoEvidence{}
	}
	return id.Evidence
}

// requestLog is the logger of a device request: with its registration ID.
func (s *Service) requestLog(req *port.Request) *slog.Logger {
	if req == nil {
		return s.log
	}
	return s.log.With("registration_id", req.RegistrationID)
}

// logIfFailed logs *err, when set, with logFailure: deferred by the use
// cases, whose named error it reads.
func (s *Service) logIfFailed(ctx context.Context, log *slog.Logger, what string, err *error) {
	if *err != nil {
		s.logFailure(ctx, log, what, *err)
	}
}

// logFailure logs a refused or failed request. Refusals of device input
// are logged by kind and by their Refusal reason, a constant chosen by
// code, never by message: attestor and issuer messages may quote parts of
// what the device sent.
func (s *Service) logFailure(ctx context.Context, log *slog.Logger, what string, err error) {
	var te *limits.ThrottledError
	if errors.As(err, &te) {
		s.logThrottled(ctx, log, what, te)
		return
	}
	var reason []any
	if r := port.ReasonOf(err); r != "" {
		reason = []any{"reason", r}
	}
	switch {
	case errors.Is(err, port.ErrUnauthorized):
		log.WarnContext(ctx, what+" refused", append([]any{"outcome", OutcomeUnauthorized}, reason...)...)
	case errors.Is(err, port.ErrInvalid):
		log.InfoContext(ctx, what+" refused", append([]any{"outcome", OutcomeInvalid}, reason...)...)
	case errors.Is(err, port.ErrNotFound):
		log.InfoContext(ctx, what+" refused", append([]any{"outcome", OutcomeNotFound}, reason...)...)
	case errors.Is(err, port.ErrThrottled):
		log.InfoContext(ctx, what+" refused", append([]any{"outcome", OutcomeThrottled}, reason...)...)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil:
		// ctx.Err: a driver may wrap the cancellation without %w.
		log.InfoContext(ctx, what+" abandoned", "outcome", OutcomeError, "error", err)
	case errors.Is(err, store.ErrBusy):
		log.WarnContext(ctx, what+" refused: store busy", "outcome", OutcomeError, "error", err)
	default:
		log.ErrorContext(ctx, what+" failed", "outcome", OutcomeError, "error", err)
	}
}
