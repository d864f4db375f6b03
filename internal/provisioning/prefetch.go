package provisioning

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/provisioning/operations"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// requestReads is what Register read of the device before its steps ran
// (prefetchStep), for the steps that would each read it themselves.
type requestReads struct {
	// cur is the device's record, nil when it has none; curErr a failed read.
	cur    *enrollment.Registration
	curErr error
	// assigning counts the device's operations still assigning (the
	// index inflight reads); assigningErr a failed read.
	assigning    int
	assigningErr error
}

// prefetchStep reads at once (store.ViewEach: one round trip on
// PostgreSQL, where three one-shot reads were three) what the steps read
// of the device by its request's registration ID: its individual
// enrollment, for the symmetric-key and TPM attestors' lookup (mechanism);
// its record (resolveStep); whether a registration of it is still
// assigning (inflight). Each read is the one its step would make moments
// later, outside any transaction; persist reads again in its own. A
// request that attest will refuse for its registration ID reads nothing.
func (s *Service) prefetchStep(ctx context.Context, r *registration) context.Context {
	req := r.req
	rr := &requestReads{}
	r.reads = rr
	if req == nil || enrollment.ValidateRegistrationID(req.RegistrationID) != nil {
		return ctx
	}
	regID := req.RegistrationID
	fns := []func(store.Tx) error{
		func(tx store.Tx) error {
			cur, err := s.st.Registrations.In(tx).Get(ctx, regID)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				rr.curErr = fmt.Errorf("provisioning: read registration: %w", err)
			default:
				rr.cur = cur
			}
			return nil
		},
	}
	if s.cfg.AssignWait > 0 {
		fns = append(fns, func(tx store.Tx) error {
			var err error
			if rr.assigning, err = s.ops.In(tx).CountBy(ctx, operations.IndexAssigning, regID); err != nil {
				rr.assigningErr = fmt.Errorf("provisioning: read operations: %w", err)
			}
			return nil
		})
	}
	// The enrollment only where mechanism and the symmetric-key lookup
	// read it, and not when the CONNECT's attestation is reused.
	var e *enrollment.IndividualEnrollment
	readE := req.Attested == nil && Mechanism(req) == enrollment.AttestationSymmetricKey
	if readE {
		fns = append(fns, func(tx store.Tx) error {
			var err error
			e, err = s.st.Enrollments.In(tx).Get(ctx, regID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				readE = false // the attestor reads it again, and reports
			}
			return nil
		})
	}
	_ = store.ViewEach(ctx, s.st.Backend, fns...) // every fn keeps its own outcome
	if readE {
		ctx = port.WithPrefetched(ctx, regID, e)
	}
	return ctx
}
