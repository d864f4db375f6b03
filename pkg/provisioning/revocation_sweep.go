package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
)

// A group sweep revokes the certificates of every registration made
// through an enrollment group. A group may have millions of devices, so
// the sweep is a stored job worked through in pages, one short
// transaction each, with its cursor saved in the same transaction as the
// page's revocations:
//
//   - StartGroupSweepTx stores the job in the transaction that disables or
//     deletes the group, so the change never commits without its sweep;
//   - the request that made the change runs a bounded number of pages at
//     once (SweepPending), which finishes small groups before it answers;
//   - Run, started once per process, works through whatever is left (and
//     sweeps interrupted by a crash or another replica's shutdown).
//
// Pages are idempotent (a revoked certificate is skipped), so two replicas
// working on one job at once waste work but do no harm. While the job is
// stored, the group's devices are refused with 429 (revocation_guard.go),
// so the sweep revokes every certificate it finds: a device of a group
// enabled again registers once the sweep is done and keeps its new
// certificate.

// sweepJob is one pending group sweep.
type sweepJob struct {
	GroupID string `json:"groupId"`
	Reason  int    `json:"reason"`
	// Started is when the job was stored, for operators reading it.
	Started time.Time `json:"started"`
	// Cursor is the continuation of the registrations-by-group index.
	Cursor string `json:"cursor,omitempty"`
}

// StartGroupSweepTx records, inside tx, a sweep revoking the certificates
// of every registration of the group. A sweep already pending for the
// group restarts from the beginning.
func (r *Revocations) StartGroupSweepTx(ctx context.Context, tx store.Tx, groupID string, reason int) error {
	b, err := json.Marshal(sweepJob{GroupID: groupID, Reason: reason, Started: r.now().UTC()})
	if err != nil {
		return err
	}
	if _, err := tx.Put(ctx, BucketRevocationSweeps, enrollment.Key(groupID), b, store.Condition{}); err != nil {
		return fmt.Errorf("provisioning: store revocation sweep: %w", err)
	}
	return nil
}

// Kick tells Run that a sweep is pending, without waiting.
func (r *Revocations) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// SweepPending works on the pending sweeps for at most maxPages pages in
// all (no bound when maxPages <= 0) and reports whether none is left.
func (r *Revocations) SweepPending(ctx context.Context, maxPages int) (done bool, err error) {
	pages := 0
	for {
		items, err := r.pendingSweeps(ctx)
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			return true, nil
		}
		for _, key := range items {
			for {
				if maxPages > 0 && pages >= maxPages {
					return false, nil
				}
				pages++
				finished, err := r.sweepPage(ctx, key)
				if err != nil {
					return false, err
				}
				if finished {
					break
				}
			}
		}
	}
}

func (r *Revocations) pendingSweeps(ctx context.Context) ([]string, error) {
	var keys []string
	err := r.st.Backend.View(ctx, func(tx store.Tx) error {
		items, err := tx.Scan(ctx, BucketRevocationSweeps, "", "", 100)
		if err != nil {
			return err
		}
		keys = keys[:0]
		for _, it := range items {
			keys = append(keys, it.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("provisioning: list revocation sweeps: %w", err)
	}
	return keys, nil
}

// sweepPage revokes the certificates of one page of the group's
// registrations and saves the cursor, or removes the job after its last
// page, in one transaction. It reports whether the job is finished (or
// gone: another replica finished it).
func (r *Revocations) sweepPage(ctx context.Context, key string) (finished bool, err error) {
	var revoked int
	var job sweepJob
	err = r.st.Backend.Update(ctx, func(tx store.Tx) error {
		finished, revoked, job = false, 0, sweepJob{}
		it, err := tx.Get(ctx, BucketRevocationSweeps, key)
		if errors.Is(err, store.ErrNotFound) {
			finished = true
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(it.Value, &job); err != nil {
			return fmt.Errorf("decode revocation sweep %q: %w", key, err)
		}
		regs, next, err := r.st.Registrations.In(tx).ListBy(ctx, store.IndexRegistrationsByGroup, job.GroupID, job.Cursor, r.pageSize)
		if errors.Is(err, store.ErrInvalidContinuation) {
			// Cannot happen with a cursor we stored; restart rather than
			// leave devices unrevoked.
			regs, next, err = r.st.Registrations.In(tx).ListBy(ctx, store.IndexRegistrationsByGroup, job.GroupID, "", r.pageSize)
		}
		if err != nil {
			return err
		}
		for _, rec := range regs {
			n, err := r.revokeRegistration(ctx, tx, rec.RegistrationID, job.Reason)
			if err != nil {
				return err
			}
			revoked += n
		}
		if revoked > 0 {
			if err := bumpGeneration(ctx, tx); err != nil {
				return err
			}
		}
		if next == "" {
			finished = true
			return tx.Delete(ctx, BucketRevocationSweeps, key, store.Condition{IfMatch: it.ETag})
		}
		job.Cursor = next
		b, err := json.Marshal(job)
		if err != nil {
			return err
		}
		_, err = tx.Put(ctx, BucketRevocationSweeps, key, b, store.Condition{IfMatch: it.ETag})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("provisioning: revocation sweep of group %q: %w", job.GroupID, err)
	}
	if revoked > 0 {
		r.log.InfoContext(ctx, "certificates revoked", "enrollment", job.GroupID, "count", revoked, "reason", job.Reason)
	}
	if finished && job.GroupID != "" {
		r.log.InfoContext(ctx, "revocation sweep finished", "enrollment", job.GroupID)
	}
	return finished, nil
}

// DefaultSweepInterval is how often Run looks for pending sweeps when not
// kicked: sweeps another replica started and could not finish.
const DefaultSweepInterval = time.Minute

// Run works through pending sweeps until ctx ends: at start (sweeps left
// by a previous process), after each Kick, and every interval
// (DefaultSweepInterval when <= 0). A failed pass is logged and retried at
// the next tick. It returns ctx's error.
func (r *Revocations) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.SweepPending(ctx, 0); err != nil && ctx.Err() == nil {
			r.log.ErrorContext(ctx, "revocation sweep failed; retrying later", "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.kick:
		case <-t.C:
		}
	}
}
