package provisioning

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// OperationStatus answers a device's poll. The device authenticates as for
// register (the SDKs resend the same SAS or client certificate on every
// poll); the operation must belong to the attested registration ID and be
// unexpired, else ErrNotFound: an operation ID of another device gets the
// same answer as one that never existed. An operation still assigning
// after its deadline is answered, and stored, as failed with
// dps.CodeAssignmentTimedOut.
//
// Polls count against Config.Limits.Poll once the device authenticated;
// a throttled poll returns a *limits.ThrottledError (429). A poll of an
// operation still assigning is never refused: a throttled one answers
// the operation as usual, and every answer of an assigning operation
// carries in RetryAfter when the device's next poll is admitted, so that
// the transport's 202 tells a device that waits as told never to come
// back too early. The Node.js SDK over HTTPS gives up on a 429 poll,
// also on the one that would find the operation just finished.
func (s *Service) OperationStatus(ctx context.Context, req *port.Request, operationID string) (op *enrollment.Operation, err error) {
	log := s.requestLog(req)
	defer s.logIfFailed(ctx, log, "operation status", &err)
	id, err := s.attest(ctx, req)
	if err != nil {
		return nil, err
	}
	throttled := s.checkPoll(id.RegistrationID)
	op, err = s.operationOf(ctx, id, operationID)
	if throttled != nil {
		if err != nil || op.Status != enrollment.RegistrationAssigning || s.book.PastDeadline(op) {
			return nil, throttled
		}
		var te *limits.ThrottledError
		errors.As(throttled, &te)
		s.logThrottled(ctx, log, "operation status", te)
	}
	if err != nil {
		return nil, err
	}
	if s.book.PastDeadline(op) {
		// The replica running it died or it ran out of time: close it as
		// failed (async.go), so that the run can no longer commit.
		return s.expire(ctx, op)
	}
	if op.Status == enrollment.RegistrationAssigning {
		op.RetryAfter = s.lim.PollWait(id.RegistrationID, s.now())
	}
	return op, nil
}

// operationOf reads the unexpired operation operationID of the attested
// device, else ErrNotFound.
func (s *Service) operationOf(ctx context.Context, id *port.Identity, operationID string) (*enrollment.Operation, error) {
	if operationID == "" || len(operationID) > 128 {
		return nil, fmt.Errorf("%w: operation", port.ErrNotFound)
	}
	op, err := s.ops.Get(ctx, operationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: operation", port.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("provisioning: read operation: %w", err)
	}
	if enrollment.Key(op.RegistrationID) != enrollment.Key(id.RegistrationID) || !s.now().Before(op.ExpiresAt) {
		return nil, fmt.Errorf("%w: operation", port.ErrNotFound)
	}
	return s.withChain(ctx, op)
}

// withChain fills in the chain of a stored operation that keeps only its
// certificate's serial (register.go) from the certificate record; records
// written before hold the chain themselves.
func (s *Service) withChain(ctx context.Context, op *enrollment.Operation) (*enrollment.Operation, error) {
	if len(op.IssuedCertificateChain) > 0 || op.IssuedCertificateSerial == "" {
		return op, nil
	}
	c, err := s.certs.Get(ctx, op.IssuedCertificateSerial)
	if err != nil {
		return nil, fmt.Errorf("provisioning: read the certificate of operation %s: %w", op.OperationID, err)
	}
	op.IssuedCertificateChain = c.Chain
	return op, nil
}

// Status answers the device's status lookup (POST
// /{idScope}/registrations/{registrationId}): the device authenticates as
// for register and gets its registration record, or ErrNotFound when it
// has none. The record never carries certificates (only their serials,
// which the transport does not answer). Lookups count against
// Config.Limits.Poll, as polls do.
func (s *Service) Status(ctx context.Context, req *port.Request) (rec *enrollment.Registration, err error) {
	log := s.requestLog(req)
	defer s.logIfFailed(ctx, log, "status lookup", &err)
	id, err := s.attest(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := s.checkPoll(id.RegistrationID); err != nil {
		return nil, err
	}
	rec, err = s.st.Registrations.Get(ctx, id.RegistrationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: registration", port.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("provisioning: read registration: %w", err)
	}
	return rec, nil
}
