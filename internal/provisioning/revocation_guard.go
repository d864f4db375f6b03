package provisioning

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
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
//     and, in the same transaction, a revocation job (internal/revocation),
//     so the two transactions are ordered: bbolt runs one writer at a
//     time; on PostgreSQL persist is a conditional transaction (READ
//     COMMITTED) that reads the enrollment or group with a shared row lock
//     before it reads the jobs. Either the delete or disable committed
//     before the lock was granted, and every later statement of persist
//     sees it and its job; or it waits for persist to commit, and the job
//     it stores is worked through in later transactions, which see the
//     certificate persist stored. The group of the device's current
//     record, when another, is locked the same way.
//   - while a revocation job covering the device is stored (its
//     registration's, its group's, or that of the group its current record
//     was made through), persist refuses it with ErrThrottled (429 +
//     Retry-After). So every certificate a job can find was stored before
//     the job, and the job revokes all of them with no cutoff by time:
//     clocks of replicas are not trusted to order transactions. A device
//     of an enrollment enabled again registers once the job is done
//     (before the change answers, unless the group is large).

// enrollmentGone re-reads, in tx, the enrollment or group the request was
// resolved to and reports whether it is disabled now. It returns an error
// wrapping ErrUnauthorized if it was deleted, ErrThrottled while a
// revocation job covers the device.
func (s *Service) enrollmentGone(ctx context.Context, tx store.Tx, regID string, t *target, cur *enrollment.Registration) (disabled bool, err error) {
	// The locks come first: the jobs read after them are those of every
	// delete or disable that committed before (see above).
	// The version resolve read is usually still the stored one: then
	// nothing is decoded or unsealed on this hot path.
	spec, changed, what := t.spec, false, "enrollment"
	switch {
	case t.individual != nil:
		var e *enrollment.IndividualEnrollment
		if e, changed, err = s.st.Enrollments.In(tx).Locked(false).GetIfChanged(ctx, t.individual.RegistrationID, t.individual.ETag); changed {
			spec = &e.Spec
		}
	case t.group != nil:
		what = "enrollment group"
		var g *enrollment.EnrollmentGroup
		if g, changed, err = s.st.Groups.In(tx).Locked(false).GetIfChanged(ctx, t.group.EnrollmentGroupID, t.group.ETag); changed {
			spec = &g.Spec
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, port.Refuse(what+" deleted during registration", fmt.Errorf("%w: no enrollment", port.ErrUnauthorized))
	case err != nil:
		return false, fmt.Errorf("provisioning: re-read %s: %w", what, err)
	}
	groups := []string{t.groupID()}
	if cur != nil && enrollment.Key(cur.EnrollmentGroupID) != enrollment.Key(t.groupID()) {
		// The sweep may not have reached its record yet.
		if _, err := store.GetLocked(ctx, tx, store.BucketGroups, enrollment.Key(cur.EnrollmentGroupID), false); err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, fmt.Errorf("provisioning: read enrollment group %s: %w", cur.EnrollmentGroupID, err)
		}
		groups = append(groups, cur.EnrollmentGroupID)
	}
	if err := revocation.Pending(ctx, tx, regID, groups...); errors.Is(err, revocation.ErrPending) {
		return false, port.Refuse("revocation pending", fmt.Errorf("%w: %w; retry later", port.ErrThrottled, err))
	} else if err != nil {
		return false, err
	}
	return !spec.Enabled(), nil
}
