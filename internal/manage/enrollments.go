package manage

import (
	"context"
	"fmt"
	"io"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Kind is what differs between individual enrollments and enrollment
// groups, so that one implementation of each use case serves both.
type Kind[T store.Document] struct {
	collection func(*store.Store) *store.Collection[T]
	validateID func(string) error
	id         func(T) string
	att        func(T) *enrollment.AttestationMechanism
	generate   func(T, io.Reader) error
	validate   func(T) error
	// revoke stores, in the transaction that writes (v) or deletes (v nil)
	// a document, the revocation jobs of the certificates the change
	// withdraws.
	revoke func(ctx context.Context, s *Service, tx store.Tx, id string, v T) ([]revocation.Job, error)
}

// Enrollments are the individual enrollments.
var Enrollments = &Kind[*enrollment.IndividualEnrollment]{
	collection: func(s *store.Store) *store.Collection[*enrollment.IndividualEnrollment] { return s.Enrollments },
	validateID: enrollment.ValidateRegistrationID,
	id:         func(e *enrollment.IndividualEnrollment) string { return e.RegistrationID },
	att:        func(e *enrollment.IndividualEnrollment) *enrollment.AttestationMechanism { return e.Attestation },
	generate:   (*enrollment.IndividualEnrollment).GenerateMissingKeys,
	validate:   (*enrollment.IndividualEnrollment).Validate,
	revoke: func(ctx context.Context, s *Service, tx store.Tx, id string, e *enrollment.IndividualEnrollment) ([]revocation.Job, error) {
		if s.rev == nil || (e != nil && e.ProvisioningStatus != enrollment.StatusDisabled) {
			return nil, nil
		}
		// Writing it disabled again revokes nothing new, but the job is
		// cheap and idempotent.
		j, err := s.rev.StartRegistrationRevocationTx(ctx, tx, id, reasonFor(e == nil))
		return []revocation.Job{j}, err
	},
}

// Groups are the enrollment groups.
var Groups = &Kind[*enrollment.EnrollmentGroup]{
	collection: func(s *store.Store) *store.Collection[*enrollment.EnrollmentGroup] { return s.Groups },
	validateID: enrollment.ValidateGroupID,
	id:         func(g *enrollment.EnrollmentGroup) string { return g.EnrollmentGroupID },
	att:        func(g *enrollment.EnrollmentGroup) *enrollment.AttestationMechanism { return g.Attestation },
	generate:   (*enrollment.EnrollmentGroup).GenerateMissingKeys,
	validate:   (*enrollment.EnrollmentGroup).Validate,
	revoke: func(ctx context.Context, s *Service, tx store.Tx, id string, g *enrollment.EnrollmentGroup) ([]revocation.Job, error) {
		if s.rev == nil || (g != nil && g.ProvisioningStatus != enrollment.StatusDisabled) {
			return nil, nil
		}
		j, err := s.rev.StartGroupSweepTx(ctx, tx, id, reasonFor(g == nil))
		return []revocation.Job{j}, err
	},
}

// reasonFor is the CRL reason of a change: deleted or disabled.
func reasonFor(deleted bool) int {
	if deleted {
		return revocation.ReasonCessationOfOperation
	}
	return revocation.ReasonPrivilegeWithdrawn
}

// Get reads one document.
func Get[T store.Document](ctx context.Context, s *Service, k *Kind[T], id string) (T, error) {
	return k.collection(s.st).Get(ctx, id)
}

// List reads one page of documents.
func List[T store.Document](ctx context.Context, s *Service, k *Kind[T], cont string, limit int) ([]T, string, error) {
	return k.collection(s.st).List(ctx, cont, limit)
}

// Put creates or replaces v under cond. Keys v leaves empty are kept from
// the stored document, or generated when there is none. The read of the
// stored keys, the write and the revocation the write causes (written
// disabled) are one transaction, so a concurrent key change is never lost
// and the If-Match condition is checked in the same transaction by the
// store. It reports whether v was created.
func Put[T store.Document](ctx context.Context, s *Service, k *Kind[T], v T, cond store.Condition) (created bool, err error) {
	if err := s.checkCAReferences(ctx, k.att(v)); err != nil {
		return false, err
	}
	if err := s.checkWrite(ctx, v); err != nil {
		return false, err
	}
	// Keys are generated before the transaction because a backend may run
	// it more than once; the function only reads through the transaction
	// and sets the same keys on every run.
	req := attKeys(k.att(v))
	if err := k.generate(v, s.rand); err != nil {
		return false, fmt.Errorf("generate keys: %w", err)
	}
	gen := attKeys(k.att(v))
	var jobs []revocation.Job
	err = s.st.Backend.Update(ctx, func(tx store.Tx) error {
		c := k.collection(s.st).In(tx)
		old, err := c.Get(ctx, k.id(v))
		var was keyPair
		switch {
		case err == nil:
			was = attKeys(k.att(old))
		case !isNotFound(err):
			return err
		}
		setAttKeys(k.att(v), merge(req, was, gen))
		if created, err = c.Put(ctx, v, cond); err != nil {
			return err
		}
		jobs, err = k.revoke(ctx, s, tx, k.id(v), v)
		return err
	})
	if err != nil {
		return false, preconditionOnMissing(err, cond)
	}
	s.finishRevocation(ctx, jobs)
	return created, nil
}

// Delete deletes a document under If-Match ifMatch ("" for any version)
// and revokes the certificates issued through it. Deleting a group keeps
// its registration records: they describe devices that exist on their
// hubs (docs/protocol.md#allocation-and-reprovisioning).
func Delete[T store.Document](ctx context.Context, s *Service, k *Kind[T], id, ifMatch string) error {
	var jobs []revocation.Job
	err := s.st.Backend.Update(ctx, func(tx store.Tx) error {
		if err := k.collection(s.st).In(tx).Delete(ctx, id, store.Condition{IfMatch: ifMatch}); err != nil {
			return err
		}
		var zero T
		var err error
		jobs, err = k.revoke(ctx, s, tx, id, zero)
		return err
	})
	if err != nil {
		return err
	}
	s.finishRevocation(ctx, jobs)
	return nil
}

// EnrollmentState is the registration state DPS shows in an individual
// enrollment: the device's record, unless it was made through a group
// (then it belongs to the group). Nil when there is none.
func (s *Service) EnrollmentState(ctx context.Context, registrationID string) (*enrollment.RegistrationState, error) {
	rec, err := s.st.Registrations.Get(ctx, registrationID)
	switch {
	case isNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	if rec.EnrollmentGroupID != "" {
		return nil, nil
	}
	return rec.ServiceState(), nil
}

// Docs are the use cases of one kind of enrollment document bound to a
// service: what a transport calls, behind an interface of its own.
type Docs[T store.Document] struct {
	s *Service
	k *Kind[T]
}

// IndividualEnrollments are the use cases of individual enrollments.
func (s *Service) IndividualEnrollments() Docs[*enrollment.IndividualEnrollment] {
	return Docs[*enrollment.IndividualEnrollment]{s, Enrollments}
}

// EnrollmentGroups are the use cases of enrollment groups.
func (s *Service) EnrollmentGroups() Docs[*enrollment.EnrollmentGroup] {
	return Docs[*enrollment.EnrollmentGroup]{s, Groups}
}

// Get is [Get] of the kind.
func (d Docs[T]) Get(ctx context.Context, id string) (T, error) { return Get(ctx, d.s, d.k, id) }

// List is [List] of the kind.
func (d Docs[T]) List(ctx context.Context, cont string, limit int) ([]T, string, error) {
	return List(ctx, d.s, d.k, cont, limit)
}

// Put is [Put] of the kind.
func (d Docs[T]) Put(ctx context.Context, v T, cond store.Condition) (bool, error) {
	return Put(ctx, d.s, d.k, v, cond)
}

// Delete is [Delete] of the kind.
func (d Docs[T]) Delete(ctx context.Context, id, ifMatch string) error {
	return Delete(ctx, d.s, d.k, id, ifMatch)
}

// Bulk is [Bulk] of the kind.
func (d Docs[T]) Bulk(ctx context.Context, mode string, vs []T) []BulkResult {
	return Bulk(ctx, d.s, d.k, mode, vs)
}
