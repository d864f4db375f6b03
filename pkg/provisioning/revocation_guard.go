package provisioning

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
)

// Revocation without races. A registration is attested and resolved
// outside any transaction, then persisted in one; an operator may delete
// or disable its enrollment or group in between. Whatever the
// interleaving, either the registration fails or its certificate is
// revoked once the delete or disable has answered:
//
//   - persist reads the enrollment (or group) again inside its own
//     transaction (enrollmentGone): gone, it refuses as an unknown
//     enrollment is refused (401); disabled, it answers disabled and
//     stores no certificate. The delete or disable writes that same key
//     and revokes what is stored in its transaction (individual
//     enrollments) or stores a group sweep job (groups), so the two
//     transactions are ordered: bbolt runs one writer at a time, and
//     PostgreSQL at SERIALIZABLE aborts one of two transactions that
//     read what the other writes.
//   - while a sweep job of the group is stored, persist refuses the
//     group's devices with ErrThrottled (429 + Retry-After), also a device
//     whose current record was made through that group (the sweep may not
//     have reached it). So every certificate of the group's records was
//     stored before the job, and the sweep revokes all of them with no
//     cutoff by time: clocks of replicas are not trusted to order
//     transactions. A group enabled again registers its devices once the
//     sweep is done (for a small group, before the disable answers).

// errSweepPending: a revocation sweep of the device's group is still
// running; the device retries.
var errSweepPending = fmt.Errorf("%w: the enrollment group's certificates are being revoked; retry later", ErrThrottled)

// enrollmentGone re-reads, in tx, the enrollment or group the request was
// resolved to and reports whether it is disabled now. It returns an error
// wrapping ErrUnauthorized if it was deleted, ErrThrottled while a sweep of
// the group (or of the group cur was made through) is pending.
func (s *Service) enrollmentGone(ctx context.Context, tx store.Tx, t *target, cur *enrollment.Registration) (disabled bool, err error) {
	var status string
	switch {
	case t.individual != nil:
		e, err := s.st.Enrollments.In(tx).Get(ctx, t.individual.RegistrationID)
		if errors.Is(err, store.ErrNotFound) {
			return false, Refuse("enrollment deleted during registration", fmt.Errorf("%w: no enrollment", ErrUnauthorized))
		}
		if err != nil {
			return false, fmt.Errorf("provisioning: re-read enrollment: %w", err)
		}
		status = e.ProvisioningStatus
	case t.group != nil:
		g, err := s.st.Groups.In(tx).Get(ctx, t.group.EnrollmentGroupID)
		if errors.Is(err, store.ErrNotFound) {
			return false, Refuse("enrollment group deleted during registration", fmt.Errorf("%w: no enrollment", ErrUnauthorized))
		}
		if err != nil {
			return false, fmt.Errorf("provisioning: re-read enrollment group: %w", err)
		}
		if err := sweepPending(ctx, tx, g.EnrollmentGroupID); err != nil {
			return false, err
		}
		status = g.ProvisioningStatus
	}
	if cur != nil && cur.EnrollmentGroupID != "" && enrollment.Key(cur.EnrollmentGroupID) != enrollment.Key(t.groupID()) {
		if err := sweepPending(ctx, tx, cur.EnrollmentGroupID); err != nil {
			return false, err
		}
	}
	return status == enrollment.StatusDisabled, nil
}

// sweepPending returns errSweepPending while a sweep job of the group is
// stored.
func sweepPending(ctx context.Context, tx store.Tx, groupID string) error {
	_, err := tx.Get(ctx, BucketRevocationSweeps, enrollment.Key(groupID))
	switch {
	case err == nil:
		return Refuse("revocation sweep of the enrollment group pending", errSweepPending)
	case errors.Is(err, store.ErrNotFound):
		return nil
	default:
		return fmt.Errorf("provisioning: read revocation sweeps: %w", err)
	}
}
