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
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
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

// Register runs the pipeline for one register request: attest, resolve the
// enrollment, allocate a hub, issue a certificate when the request carries
// a CSR, and persist the registration record, the certificate and the
// operation in one transaction.
//
// It returns the stored operation, whose Status is assigned, failed (an
// allocation failure, with ErrorCode and ErrorMessage) or disabled; or,
// when Config.AssignWait is set and allocation, issuance and persisting
// take longer than that, assigning: the registration then completes in the
// background under the same operation ID, which polls read (async.go).
// ErrThrottled: another registration of the device is still assigning,
// or a *ThrottledError: one of Config.Limits refused it. Request faults
// return an error wrapping ErrUnauthorized or ErrInvalid and store
// nothing; any other error is a server fault, and then nothing was stored
// either (a certificate whose write failed is never returned).
func (s *Service) Register(ctx context.Context, req *Request) (op *enrollment.Operation, err error) {
	log := s.log
	if req != nil {
		log = log.With("registration_id", req.RegistrationID)
	}
	defer func() {
		if err != nil {
			s.logFailure(ctx, log, "register", err)
		}
	}()

	id, err := s.attest(ctx, req)
	if err != nil {
		return nil, err
	}
	log = log.With("attestation", id.Type)
	if err := freshTPM(id); err != nil {
		return nil, err
	}
	if id.Renewal != nil {
		log = log.With("renewal_of", id.Renewal.Serial)
	}
	t, err := s.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	log = log.With("enrollment", t.name)
	// Counted only now that the device proved who it is, and before
	// anything is stored (a disabled answer stores an operation too).
	if err := s.checkRegister(id.RegistrationID, t); err != nil {
		return nil, err
	}
	opID, err := s.newOperationID()
	if err != nil {
		return nil, err
	}
	if t.disabled {
		op := s.disabledOperation(opID, req.RegistrationID)
		if err := s.saveOperation(ctx, op); err != nil {
			return nil, err
		}
		log.InfoContext(ctx, "registration refused", "outcome", OutcomeDisabled)
		return op, nil
	}
	if op, err := s.refuseFirmware(ctx, log, opID, req, id); op != nil || err != nil {
		return op, err
	}
	if len(req.CSR) > 0 && s.cfg.Issuer == nil {
		return nil, Refuse("certificate issuance not enabled", fmt.Errorf("%w: certificate issuance is not enabled on this instance", ErrInvalid))
	}
	// The current record: a snapshot for the allocator (the transaction
	// reads it again).
	cur, err := s.st.Registrations.Get(ctx, req.RegistrationID)
	if errors.Is(err, store.ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning: read registration: %w", err)
	}
	if id.Renewal != nil {
		if err := renewing(req, id, t, cur); err != nil {
			return nil, err
		}
	}
	if s.cfg.AssignWait > 0 {
		return s.assignAsync(ctx, log, opID, req, id, t, cur)
	}
	return s.assign(ctx, log, opID, req, id, t, cur, time.Time{})
}

// assign is the part of Register that may be slow, outside any
// transaction: allocate (a custom webhook may take seconds), issue, then
// persist. deadline, when not zero, is that of a registration that may
// have been handed to the background (async.go): persist refuses to
// commit after it.
func (s *Service) assign(ctx context.Context, log *slog.Logger, opID string, req *Request, id *Identity, t *target, cur *enrollment.Registration, deadline time.Time) (*enrollment.Operation, error) {
	dec, err := s.allocate(ctx, t, req, id, cur)
	if allocation.IsFailure(err) {
		return s.failAllocation(ctx, log, opID, req, err)
	}
	if err != nil {
		return nil, err
	}
	var issued *Issued
	if len(req.CSR) > 0 {
		if s.cfg.Issuer == nil {
			return nil, Refuse("certificate issuance not enabled", fmt.Errorf("%w: certificate issuance is not enabled on this instance", ErrInvalid))
		}
		issued, err = s.cfg.Issuer.Issue(ctx, req.CSR, LeafPolicy{RegistrationID: req.RegistrationID, DeviceID: t.deviceID, Validity: s.cfg.CertificateValidity})
		if err != nil {
			return nil, err
		}
		if issued == nil || issued.Serial == "" || len(issued.Chain) == 0 {
			return nil, errors.New("provisioning: issuer returned no certificate")
		}
	}

	op, err := s.persist(ctx, opID, deadline, req, id, t, dec, issued)
	if errors.Is(err, errHubFull) {
		return s.failAllocation(ctx, log, opID, req, err)
	}
	if err != nil {
		return nil, err
	}
	if op.Status == enrollment.RegistrationDisabled {
		log.InfoContext(ctx, "registration refused", "outcome", OutcomeDisabled, "reason", "enrollment disabled during registration")
		return op, nil
	}
	attrs := []any{"outcome", OutcomeAssigned, "hub", op.Registration.AssignedHub, "substatus", op.Registration.Substatus, "operation_id", op.OperationID}
	if issued != nil {
		attrs = append(attrs, "certificate_serial", issued.Serial)
	}
	log.InfoContext(ctx, "registration assigned", attrs...)
	return op, nil
}

func assigned(r *enrollment.Registration) bool {
	return r != nil && r.Status == enrollment.RegistrationAssigned && r.AssignedHub != ""
}

// nextState applies the reprovisioning rules of docs/protocol.md#allocation-and-reprovisioning to the
// record as it is now (cur, nil at first registration) and the hub the
// allocator proposed. It returns the hub and substatus:
//
//	no assigned record                        → proposed, initialAssignment
//	updateHubAssignment=false                 → current hub, substatus unchanged
//	hub unchanged, migrateDeviceData=true     → current hub, substatus unchanged
//	hub unchanged, migrateDeviceData=false    → current hub, deviceDataReset
//	moved back to the initial hub             → proposed, reprovisionedToInitialAssignment
//	moved, migrateDeviceData=true             → proposed, deviceDataMigrated
//	moved, migrateDeviceData=false            → proposed, deviceDataReset
func nextState(cur *enrollment.Registration, proposed string, p enrollment.ReprovisionPolicy) (hub, substatus string) {
	switch {
	case !assigned(cur):
		return proposed, enrollment.SubstatusInitialAssignment
	case !p.UpdateHubAssignment:
		return cur.AssignedHub, cur.Substatus
	case enrollment.Key(proposed) == enrollment.Key(cur.AssignedHub):
		if p.MigrateDeviceData {
			return cur.AssignedHub, cur.Substatus
		}
		return cur.AssignedHub, enrollment.SubstatusDeviceDataReset
	case cur.InitialHub != "" && enrollment.Key(proposed) == enrollment.Key(cur.InitialHub):
		return proposed, enrollment.SubstatusReprovisionedToInitialAssignment
	case p.MigrateDeviceData:
		return proposed, enrollment.SubstatusDeviceDataMigrated
	}
	return proposed, enrollment.SubstatusDeviceDataReset
}

// persist writes the record, the certificate and the operation in one
// Update. The function may run more than once (batching): it builds every
// value afresh from what it reads through tx.
func (s *Service) persist(ctx context.Context, opID string, deadline time.Time, req *Request, id *Identity, t *target, dec allocation.Decision, issued *Issued) (*enrollment.Operation, error) {
	// The device is answered only a custom allocation webhook's payload, as
	// on Azure; its own payload is allocation input, never echoed (the C
	// SDK would hand it to the application as if the service sent it).
	payload := dec.Payload
	var op *enrollment.Operation
	var oldDICE *enrollment.DICEState
	err := s.st.Backend.Update(ctx, func(tx store.Tx) error {
		if !deadline.IsZero() && !s.now().Before(deadline) {
			return errAssignTimeout // a poll may have answered failed already
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
			if err := s.closeOperation(ctx, tx, o); err != nil {
				return err
			}
			op = o
			return nil
		}
		if err := claimTPM(ctx, tx, id); err != nil {
			return err
		}
		if err := checkRenewal(id, cur); err != nil {
			return err
		}
		diceState, err := diceRecord(id, cur)
		if err != nil {
			return err
		}
		if oldDICE = nil; cur != nil {
			oldDICE = cur.DICE
		}
		hub, sub := nextState(cur, dec.Hub, t.reprov)
		if err := s.checkCapacity(ctx, tx, hub, cur); err != nil {
			return err
		}
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
			X509:              x509Summary(id),
			DICE:              diceState,
			InitialTwin:       initialTwin(t, dec),
		}
		if id.Renewal != nil && len(payload) == 0 {
			rec.Payload = cloneRaw(cur.Payload) // a renewal asks no webhook: it keeps the last webhook payload
		}
		cond := store.Condition{IfNoneMatch: true}
		if cur != nil {
			cond = store.Condition{IfMatch: cur.ETag}
			rec.RegistrationID = cur.RegistrationID // keep the spelling of the first registration
			rec.CertificateSerials = slices.Clone(cur.CertificateSerials)
			rec.CertificateExpiry = maps.Clone(cur.CertificateExpiry)
			if assigned(cur) && cur.InitialHub != "" {
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
		o := s.newOperation(opID, rec.RegistrationID, enrollment.RegistrationAssigned)
		snap := *rec
		o.Registration = &snap
		if issued != nil {
			o.IssuedCertificateChain = issued.Chain
		}
		o.TPMAuthenticationKey = tpmAuthenticationKey(id)
		if err := s.closeOperation(ctx, tx, o); err != nil {
			return err
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

func (s *Service) newOperation(opID, registrationID, status string) *enrollment.Operation {
	return &enrollment.Operation{
		OperationID:    opID,
		RegistrationID: registrationID,
		Status:         status,
		ExpiresAt:      s.now().UTC().Add(s.cfg.OperationTTL),
	}
}

// disabledOperation is the final operation of a device whose enrollment
// or group is disabled: no record, no certificate.
func (s *Service) disabledOperation(opID, registrationID string) *enrollment.Operation {
	op := s.newOperation(opID, registrationID, enrollment.RegistrationDisabled)
	op.Registration = &enrollment.Registration{RegistrationID: registrationID, Status: enrollment.RegistrationDisabled}
	return op
}

// saveOperation stores a final operation that comes without a record
// (disabled, refused firmware), replacing the device's previous one.
func (s *Service) saveOperation(ctx context.Context, op *enrollment.Operation) error {
	return s.finalOperation(ctx, op)
}

// logFailure logs a refused or failed request. Refusals of device input
// are logged by kind and by their Refusal reason, a constant chosen by
// code, never by message: attestor and issuer messages may quote parts of
// what the device sent.
func (s *Service) logFailure(ctx context.Context, log *slog.Logger, what string, err error) {
	var te *ThrottledError
	if errors.As(err, &te) {
		s.logThrottled(ctx, log, what, te)
		return
	}
	var reason []any
	if r := ReasonOf(err); r != "" {
		reason = []any{"reason", r}
	}
	switch {
	case errors.Is(err, ErrUnauthorized):
		log.WarnContext(ctx, what+" refused", append([]any{"outcome", OutcomeUnauthorized}, reason...)...)
	case errors.Is(err, ErrInvalid):
		log.InfoContext(ctx, what+" refused", append([]any{"outcome", OutcomeInvalid}, reason...)...)
	case errors.Is(err, ErrNotFound):
		log.InfoContext(ctx, what+" refused", append([]any{"outcome", OutcomeNotFound}, reason...)...)
	case errors.Is(err, ErrThrottled):
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
