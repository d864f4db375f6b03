package operations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/sweep"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Retention. Polls ignore an operation once its ExpiresAt (OperationTTL
// after it was written) has passed; PruneExpired then deletes it, so that
// the store holds the operations of about one OperationTTL plus one prune
// interval instead of one per registration ever made. A device's new final
// operation deletes its previous one at once (replacePrevious), so the
// store holds about one operation per device registered within that time.
//
// A sweep reads every operation (in pages, read-only) and deletes the
// expired ones sweep.Batch at a time, each batch in one transaction that
// reads the operation again and deletes it through the typed collection,
// so its assigning-index entry goes with it. It keeps no cursor: it starts
// from the first key each time, and one cut short is done again by the
// next. Replicas may sweep at once; a record another one deleted first is
// skipped.
//
// Cost: each sweep reads the live operations, that is the registrations of
// the last OperationTTL plus one interval (a million a day: some 2,000
// read pages an hour). An index by expiry time would read only the expired
// ones, at the price of one more index write per registration and a full
// sweep anyway for the operations written before it existed; add it when
// the read becomes the cost that matters.

// PruneExpired deletes the operations whose ExpiresAt is not after now,
// with their index entries, and returns how many it deleted. An operation
// still assigning is kept until its Deadline plus OperationTTL as well,
// however old its ExpiresAt: its background run may still be about to
// commit, and a device registering again must still find it (internal/provisioning, async.go).
func (k *Book) PruneExpired(ctx context.Context, now time.Time) (deleted int, err error) {
	n, err := sweep.Expired(ctx, k.b, Bucket, sweep.Batch,
		func(it store.Item) bool {
			var op enrollment.Operation
			// One that does not decode is left alone (and to the reads,
			// which report it).
			return json.Unmarshal(it.Value, &op) == nil && k.expired(&op, now)
		},
		func(ctx context.Context, tx store.Tx, key string) (bool, error) {
			ops := k.ops.In(tx)
			op, err := ops.Get(ctx, key)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return false, nil // another replica pruned it
			case err != nil:
				return false, err
			case !k.expired(op, now):
				return false, nil // replaced meanwhile
			}
			if err := ops.Delete(ctx, key, store.Condition{IfMatch: op.ETag}); err != nil {
				return false, err
			}
			return true, forgetCurrent(ctx, tx, op)
		})
	if err != nil {
		return n, fmt.Errorf("operations: prune: %w", err)
	}
	return n, nil
}

// forgetCurrent deletes the device's BucketCurrent entry when it
// names op, which is being deleted, so that the entries do not outlive the
// operations of devices that never come back.
func forgetCurrent(ctx context.Context, tx store.Tx, op *enrollment.Operation) error {
	regKey := enrollment.Key(op.RegistrationID)
	it, err := tx.Get(ctx, BucketCurrent, regKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case string(it.Value) != op.StoreKey():
		return nil // a newer operation is current
	}
	return tx.Delete(ctx, BucketCurrent, regKey, store.Condition{IfMatch: it.ETag})
}

// operationExpired reports whether op may be deleted at now.
func (k *Book) expired(op *enrollment.Operation, now time.Time) bool {
	if now.Before(op.ExpiresAt) {
		return false
	}
	if op.Status == enrollment.RegistrationAssigning && now.Before(op.Deadline.Add(k.ttl)) {
		return false
	}
	return true
}
