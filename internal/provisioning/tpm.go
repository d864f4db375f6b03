package provisioning

import (
	"context"
	"errors"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// mechanism is Mechanism, except that a SAS without a tpm object belongs
// to the TPM attestor when the registration ID's individual enrollment uses
// TPM: the SDKs poll (and look up status) with the SAS of the second round
// and no body. A failed lookup leaves the choice to Mechanism (the
// symmetric-key verifier reads the enrollment again and reports it).
//
// What it read, or prefetchStep read, is handed on in the returned
// context (port.PrefetchedEnrollment), so that the symmetric-key attestor
// does not read it again.
func (s *Service) mechanism(ctx context.Context, req *port.Request) (string, context.Context) {
	mech := Mechanism(req)
	if mech != enrollment.AttestationSymmetricKey || s.cfg.Attestors[enrollment.AttestationTPM] == nil {
		return mech, ctx
	}
	if e, ok := port.PrefetchedEnrollment(ctx, req.RegistrationID); ok { // read by prefetchStep
		if e != nil && e.Attestation != nil && e.Attestation.Type == enrollment.AttestationTPM {
			return enrollment.AttestationTPM, ctx
		}
		return mech, ctx
	}
	e, err := s.st.Enrollments.Get(ctx, req.RegistrationID)
	switch {
	case err == nil:
		ctx = port.WithPrefetched(ctx, req.RegistrationID, e)
	case errors.Is(err, store.ErrNotFound):
		ctx = port.WithPrefetched(ctx, req.RegistrationID, nil)
	}
	if err == nil && e.Attestation != nil && e.Attestation.Type == enrollment.AttestationTPM {
		return enrollment.AttestationTPM, ctx
	}
	return mech, ctx
}
