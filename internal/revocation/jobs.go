package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Revocation jobs. Deleting or disabling an enrollment or a group stores
// a job in the same transaction as the change, and the job revokes the
// certificates afterwards, in short transactions of its own:
//
//   - a registration job (an individual enrollment) revokes one
//     registration's certificates;
//   - a group sweep revokes those of every registration made through the
//     group. A group may have millions of devices, so it is worked through
//     in pages, one short transaction each, with its cursor saved in the
//     same transaction as the page's revocations.
//
// The change's own transaction stays small (it writes the document and
// the job, and reads nothing a registration writes), so on PostgreSQL a
// device registering in a loop cannot make it fail for contention. While
// a job is stored, the pipeline refuses the devices it covers with 429
// (Pending; the pipeline's revocation_guard.go), so a job revokes every certificate it finds.
//
// The request that made the change runs its jobs before it answers
// (Finish, bounded: a small group is finished, a large one continues in
// the background), and Run, started once per process, works through
// whatever is left (jobs interrupted by a crash or another replica's
// shutdown). Pages are idempotent (a revoked certificate is skipped), so
// two replicas working on one job at once waste work but do no harm.

// sweepJob is one pending revocation job: of a group (GroupID) or of one
// registration (RegistrationID).
type sweepJob struct {
	GroupID        string `json:"groupId,omitempty"`
	RegistrationID string `json:"registrationId,omitempty"`
	Reason         int    `json:"reason"`
	// Started is when the job was stored, for operators reading it.
	Started time.Time `json:"started"`
	// Cursor is the continuation of the registrations-by-group index.
	Cursor string `json:"cursor,omitempty"`
}

// Job names a stored revocation job, for Finish.
type Job struct {
	bucket store.Bucket
	key    string
}

// StartGroupSweepTx records, inside tx, a sweep revoking the certificates
// of every registration of the group. A sweep already pending for the
// group restarts from the beginning.
func (r *Revocations) StartGroupSweepTx(ctx context.Context, tx store.Tx, groupID string, reason int) (Job, error) {
	return r.startJob(ctx, tx, Job{BucketRevocationSweeps, enrollment.Key(groupID)}, sweepJob{GroupID: groupID, Reason: reason})
}

// StartRegistrationRevocationTx records, inside tx, a job revoking every
// certificate of the registration.
func (r *Revocations) StartRegistrationRevocationTx(ctx context.Context, tx store.Tx, registrationID string, reason int) (Job, error) {
	return r.startJob(ctx, tx, Job{BucketRevocationRegistrations, enrollment.Key(registrationID)}, sweepJob{RegistrationID: registrationID, Reason: reason})
}

func (r *Revocations) startJob(ctx context.Context, tx store.Tx, j Job, job sweepJob) (Job, error) {
	job.Started = r.now().UTC()
	b, err := json.Marshal(job)
	if err != nil {
		return Job{}, err
	}
	if _, err := tx.Put(ctx, j.bucket, j.key, b, store.Condition{}); err != nil {
		return Job{}, fmt.Errorf("revocation: store revocation job: %w", err)
	}
	return j, nil
}

// Kick tells Run that a job is pending, without waiting.
func (r *Revocations) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Finish works on the given jobs for at most maxPages pages in all (no
// bound when maxPages <= 0) and reports whether all of them are done.
func (r *Revocations) Finish(ctx context.Context, jobs []Job, maxPages int) (done bool, err error) {
	_, done, err = r.finish(ctx, jobs, maxPages)
	return done, err
}

func (r *Revocations) finish(ctx context.Context, jobs []Job, maxPages int) (pages int, done bool, err error) {
	for _, j := range jobs {
		for {
			if maxPages > 0 && pages >= maxPages {
				return pages, false, nil
			}
			pages++
			finished, err := r.sweepPage(ctx, j)
			if err != nil {
				return pages, false, err
			}
			if finished {
				break
			}
		}
	}
	return pages, true, nil
}

// SweepPending works on every pending job, registration jobs first, for
// at most maxPages pages in all (no bound when maxPages <= 0) and reports
// whether none is left.
func (r *Revocations) SweepPending(ctx context.Context, maxPages int) (done bool, err error) {
	pages := 0
	for {
		jobs, err := r.pendingJobs(ctx)
		if err != nil || len(jobs) == 0 {
			return err == nil, err
		}
		left := 0
		if maxPages > 0 {
			if left = maxPages - pages; left <= 0 {
				return false, nil
			}
		}
		n, done, err := r.finish(ctx, jobs, left)
		if err != nil || !done {
			return false, err
		}
		pages += n
	}
}

func (r *Revocations) pendingJobs(ctx context.Context) ([]Job, error) {
	var jobs []Job
	err := r.st.Backend.View(ctx, func(tx store.Tx) error {
		jobs = jobs[:0]
		for _, b := range []store.Bucket{BucketRevocationRegistrations, BucketRevocationSweeps} {
			items, err := tx.Scan(ctx, b, "", "", 100)
			if err != nil {
				return err
			}
			for _, it := range items {
				jobs = append(jobs, Job{b, it.Key})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revocation: list revocation jobs: %w", err)
	}
	return jobs, nil
}

// sweepPage does one page of a job and saves its cursor, or removes the
// job after its last page, in one transaction. It reports whether the
// job is finished (or gone: another replica finished it).
func (r *Revocations) sweepPage(ctx context.Context, j Job) (finished bool, err error) {
	var revoked int
	var job sweepJob
	err = r.st.Backend.Update(ctx, func(tx store.Tx) error {
		finished, revoked, job = false, 0, sweepJob{}
		it, err := tx.Get(ctx, j.bucket, j.key)
		if errors.Is(err, store.ErrNotFound) {
			finished = true
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(it.Value, &job); err != nil {
			return fmt.Errorf("decode revocation job %q: %w", j.key, err)
		}
		var ids []string
		next := ""
		if job.RegistrationID != "" {
			ids = []string{job.RegistrationID}
		} else {
			var regs []*enrollment.Registration
			regs, next, err = r.st.Registrations.In(tx).ListBy(ctx, store.IndexRegistrationsByGroup, job.GroupID, job.Cursor, r.pageSize)
			if errors.Is(err, store.ErrInvalidContinuation) {
				// Cannot happen with a cursor we stored; restart rather than
				// leave devices unrevoked.
				regs, next, err = r.st.Registrations.In(tx).ListBy(ctx, store.IndexRegistrationsByGroup, job.GroupID, "", r.pageSize)
			}
			if err != nil {
				return err
			}
			for _, rec := range regs {
				ids = append(ids, rec.RegistrationID)
			}
		}
		for _, id := range ids {
			n, err := r.revokeRegistration(ctx, tx, id, job.Reason)
			if err != nil {
				return err
			}
			revoked += n
		}
		if revoked > 0 {
			if err := markChanged(ctx, tx); err != nil {
				return err
			}
		}
		if next == "" {
			finished = true
			return tx.Delete(ctx, j.bucket, j.key, store.Condition{IfMatch: it.ETag})
		}
		job.Cursor = next
		b, err := json.Marshal(job)
		if err != nil {
			return err
		}
		_, err = tx.Put(ctx, j.bucket, j.key, b, store.Condition{IfMatch: it.ETag})
		return err
	})
	what := []any{"enrollment", job.GroupID}
	if job.RegistrationID != "" {
		what = []any{"registration_id", job.RegistrationID}
	}
	if err != nil {
		return false, fmt.Errorf("revocation: revocation job %q: %w", j.key, err)
	}
	if revoked > 0 {
		r.log.InfoContext(ctx, "certificates revoked", append(what, "count", revoked, "reason", job.Reason)...)
	}
	if finished && job.GroupID != "" {
		r.log.InfoContext(ctx, "revocation sweep finished", what...)
	}
	return finished, nil
}

// DefaultSweepInterval is how often Run looks for pending sweeps when not
// kicked: sweeps another replica started and could not finish.
const DefaultSweepInterval = time.Minute

// Run works through pending jobs until ctx ends: at start (sweeps left
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
