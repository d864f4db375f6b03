package provisioning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zdps/zdps/internal/provisioning/detach"
	"github.com/zdps/zdps/internal/provisioning/operations"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// This file lets a registration outlive its register request
// (Config.AssignWait). Attestation, enrollment resolution and the disabled
// and firmware checks always run within the request, so a refused device
// still gets its 401/400 and nothing is stored. The rest (allocate, issue,
// persist) runs on a context detached from the request, bounded by
// Config.AssignTimeout. Register waits for it up to AssignWait; when it is
// not done by then, Register stores an assigning operation and returns it
// (the transport answers 202 + Retry-After), and the run writes the final
// operation (with the record and the certificate, in one transaction, as
// always) under the same operation ID.
//
// Ordering. The run may finish before or after the assigning write, and
// the final state must win:
//
//   - the assigning write is create-only: a conflict means the final state
//     landed first, and Register returns that instead;
//   - the final write (closeOperation) creates the operation, or replaces
//     the assigning state with a compare-and-swap on its ETag inside the
//     transaction that also writes the record and the certificate; when it
//     finds a final state already (a poll declared the run dead), the
//     whole transaction is rolled back, so the record never disagrees with
//     what the device was told.
//
// Faults found after Register stopped waiting cannot be answered as HTTP
// errors any more: they end the operation as failed, with errorCode 400004
// and the fixed reason of the refusal (a CSR the CA refuses), 401002, or
// 500000 (a server fault); the device registers again.
//
// Replicas. Everything a poll needs is in the store: any replica answers
// it. If the replica doing the work dies, the operation stays assigning
// until its Deadline; the first poll (or register of the same device)
// after it replaces it by failed (errorCode dps.CodeAssignmentTimedOut)
// with a compare-and-swap, and a later register starts over. The run
// itself refuses to commit after the deadline.
//
// Abuse. A device that registers again while an operation of its own is
// still assigning does not start a second run: the same request (same
// mechanism, CSR and payload: a client retrying a PUT it lost the answer
// to) joins the running operation and gets its operation ID again; a
// different request is refused with ErrThrottled (429 + Retry-After) until
// the running one ends or its deadline passes. Joining a different request
// would hand the device a certificate for a key it may no longer hold.
// Runs still within their AssignWait are not visible to this check: they
// hold their request, so a device can only have as many as it has open
// requests.

// Operations that fail in the background end with the errorCode the
// device API answers for the same fault within a request (pkg/dps):
// CodeUnauthorized, CodeBadArgument, CodeInternal, CodeUnavailable,
// CodeThrottled, or CodeAssignmentTimedOut when the run did not complete
// before its deadline (the replica running it died or the allocation took
// longer than AssignTimeout): the device should register again.

// OutcomeAssigning is logged when a registration continues in the
// background.
const OutcomeAssigning = "assigning"

// MessageAssignmentTimedOut is the errorMessage of dps.CodeAssignmentTimedOut.
const MessageAssignmentTimedOut = operations.MessageTimedOut

// errAssignTimeout: the run reached its deadline before committing.
var errAssignTimeout = errors.New("provisioning: assignment did not complete before its deadline")

// settleTimeout bounds the write of a background run's failure.
const settleTimeout = 10 * time.Second

// Wait blocks until every registration running in the background has
// stored its outcome, or ctx ends (graceful shutdown: stop accepting
// requests first). A run abandoned by an early return answers failed
// after its deadline.
func (s *Service) Wait(ctx context.Context) error {
	if err := s.bg.Wait(ctx); err != nil {
		return fmt.Errorf("provisioning: registrations still running in the background: %w", err)
	}
	return nil
}

// assignAsync runs assign on a detached context and waits up to
// AssignWait for it.
func (s *Service) assignAsync(ctx context.Context, r *registration) (*enrollment.Operation, error) {
	log, opID, req := r.log, r.opID, r.req
	hash := requestHash(r.id, req)
	if op, err := s.inflight(ctx, log, req.RegistrationID, hash, r.reads); op != nil || err != nil {
		return op, err
	}
	deadline := s.now().UTC().Add(s.cfg.AssignTimeout)
	r.deadline = deadline
	// The run keeps the request's values (request ID) but not its
	// cancellation; the clock of its context is the real one, the
	// deadline persist checks is s.now's. A failure it meets once
	// Register stopped waiting is stored as its outcome (settle).
	op, finished, err := detach.Run(ctx, &s.bg, s.cfg.AssignWait, s.cfg.AssignTimeout,
		func(bctx context.Context) (*enrollment.Operation, error) { return s.assign(bctx, r) },
		func(bctx context.Context, _ *enrollment.Operation, err error) {
			if err != nil {
				s.settle(bctx, log, opID, req, err)
			}
		})
	if finished {
		return op, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the device went away; the run stores its outcome anyway
	}
	if s.testHookDetached != nil {
		s.testHookDetached()
	}
	a := s.book.New(opID, req.RegistrationID, enrollment.RegistrationAssigning)
	a.Deadline = deadline
	a.RequestHash = hash
	_, err = s.ops.Put(ctx, a, store.Condition{IfNoneMatch: true})
	if errors.Is(err, store.ErrConflict) {
		// The run stored its final state first: answer it.
		op, err := s.ops.Get(ctx, opID)
		if err != nil {
			return nil, fmt.Errorf("provisioning: read operation: %w", err)
		}
		return s.withChain(ctx, op)
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning: store operation: %w", err)
	}
	log.InfoContext(ctx, "registration continues in the background", "outcome", OutcomeAssigning, "operation_id", opID, "deadline", deadline)
	return a, nil
}

// inflight looks for an assigning operation of the registration ID: the
// same request joins it, another is throttled; operations past their
// deadline are closed as failed on the way.
func (s *Service) inflight(ctx context.Context, log *slog.Logger, regID, hash string, reads *requestReads) (*enrollment.Operation, error) {
	// Nearly always there is none: the index alone says so, read by
	// prefetchStep.
	if reads.assigningErr != nil {
		return nil, reads.assigningErr
	} else if reads.assigning == 0 {
		return nil, nil
	}
	ops, _, err := s.ops.ListBy(ctx, operations.IndexAssigning, regID, "", 16)
	if err != nil {
		return nil, fmt.Errorf("provisioning: read operations: %w", err)
	}
	for _, op := range ops {
		if op.Status != enrollment.RegistrationAssigning || enrollment.Key(op.RegistrationID) != enrollment.Key(regID) {
			continue
		}
		if s.book.PastDeadline(op) {
			if _, err := s.expire(ctx, op); err != nil {
				return nil, err
			}
			continue
		}
		if op.RequestHash == hash {
			log.InfoContext(ctx, "registration joins the one still assigning", "outcome", OutcomeAssigning, "operation_id", op.OperationID)
			return op, nil
		}
		return nil, port.Refuse("another registration of the device is still assigning",
			fmt.Errorf("%w: a registration of this device is still assigning; retry later", port.ErrThrottled))
	}
	return nil, nil
}

// requestHash identifies what a register request asks for, beyond who
// the device is (attestation already proved that).
func requestHash(id *port.Identity, req *port.Request) string {
	h := sha256.New()
	write := func(b []byte) {
		var n [8]byte
		for i, l := 0, uint64(len(b)); i < 8; i++ {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(b)
	}
	write([]byte(id.Type))
	write(req.CSR)
	write(req.Payload)
	if serial := evidence(id).RenewalOf(); serial != "" {
		write([]byte(serial))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// expire closes an assigning operation past its deadline as failed
// (operations.Book.Expire) and logs the failure, and returns what is
// stored now.
func (s *Service) expire(ctx context.Context, op *enrollment.Operation) (*enrollment.Operation, error) {
	out, err := s.book.Expire(ctx, op)
	if err != nil {
		return nil, fmt.Errorf("provisioning: %w", err)
	}
	if out.Status == enrollment.RegistrationFailed && out.ErrorCode == dps.CodeAssignmentTimedOut {
		s.log.WarnContext(ctx, "registration failed", "registration_id", out.RegistrationID, "operation_id", out.OperationID,
			"outcome", OutcomeFailed, "reason", MessageAssignmentTimedOut)
	}
	return s.withChain(ctx, out) // a final state that replaced it meanwhile
}

// settle stores the failure of a run whose request no longer waits: the
// device learns it by polling.
func (s *Service) settle(ctx context.Context, log *slog.Logger, opID string, req *port.Request, err error) {
	code, msg := dps.CodeInternal, "internal error while assigning; register again"
	switch {
	case errors.Is(err, errAssignTimeout), errors.Is(err, context.DeadlineExceeded):
		code, msg = dps.CodeAssignmentTimedOut, MessageAssignmentTimedOut
	case errors.Is(err, port.ErrUnauthorized):
		code, msg = dps.CodeUnauthorized, "registration refused: unauthorized"
	case errors.Is(err, port.ErrInvalid):
		// Refusal reasons are constants chosen by code, safe to answer.
		code, msg = dps.CodeBadArgument, "registration refused: invalid request"
		if r := port.ReasonOf(err); r != "" {
			msg = "registration refused: " + r
		}
	case errors.Is(err, port.ErrThrottled):
		code, msg = dps.CodeThrottled, "registration refused for now; register again later"
	case errors.Is(err, store.ErrBusy), errors.Is(err, port.ErrUnavailable):
		code, msg = dps.CodeUnavailable, "service busy; register again"
	case errors.Is(err, operations.ErrClosed):
		return // a poll closed it after its deadline
	}
	s.logFailure(ctx, log, "background registration", err)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	werr := s.book.Final(wctx, s.book.Failed(opID, req.RegistrationID, code, msg))
	switch {
	case errors.Is(werr, operations.ErrClosed):
	case werr != nil:
		// Polls answer failed once the deadline passes.
		log.ErrorContext(ctx, "store the outcome of a background registration", "operation_id", opID, "outcome", OutcomeError, "error", werr)
	default:
		log.WarnContext(ctx, "registration failed", "operation_id", opID, "outcome", OutcomeFailed, "reason", msg)
	}
}
