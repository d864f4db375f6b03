package operations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Buckets of the register operations.
const (
	// Bucket holds enrollment.Operation by operation ID.
	Bucket store.Bucket = "operations"
	// IndexAssigning indexes the operations whose status is
	// assigning by registration ID: the registrations running in the
	// background (internal/provisioning, async.go). The entry goes when the final state replaces
	// the assigning one.
	IndexAssigning store.Bucket = "operations-assigning"
	// BucketCurrent holds, by registration ID, the ID of the
	// device's last final operation, so that writing the next one finds
	// and deletes it with point reads (Close).
	BucketCurrent store.Bucket = "operations-current"
)

// Collection is the collection of register operations on b.
func Collection(b store.Backend, now func() time.Time) *store.Collection[*enrollment.Operation] {
	if now == nil {
		now = time.Now
	}
	return store.NewCollection(b, Bucket, now, func() *enrollment.Operation { return new(enrollment.Operation) },
		store.Index[*enrollment.Operation]{Bucket: IndexAssigning, Of: assigningIndex},
	)
}

// assigningIndex indexes an operation by registration ID while it is
// assigning.
func assigningIndex(o *enrollment.Operation) []string {
	if o.Status == enrollment.RegistrationAssigning {
		return []string{o.RegistrationID}
	}
	return nil
}

// ErrClosed: the operation already holds a final state; a write that
// finds it must roll its transaction back.
var ErrClosed = errors.New("operations: operation already final")

// MessageTimedOut is the errorMessage of dps.CodeAssignmentTimedOut.
const MessageTimedOut = "assignment did not complete in time; register again"

// Book keeps the register operations of one store: it makes them, closes
// them, expires them and prunes them. It is safe for concurrent use.
type Book struct {
	b   store.Backend
	ops *store.Collection[*enrollment.Operation]
	now func() time.Time
	// ttl is how long a poll finds an operation after it was written.
	ttl time.Duration
}

// New keeps the operations of b; now is the clock (time.Now when nil),
// ttl how long a poll finds an operation.
func New(b store.Backend, now func() time.Time, ttl time.Duration) *Book {
	if now == nil {
		now = time.Now
	}
	return &Book{b: b, ops: Collection(b, now), now: now, ttl: ttl}
}

// Operations is the collection the book keeps, for reads.
func (k *Book) Operations() *store.Collection[*enrollment.Operation] { return k.ops }

// New is an operation of status, found by polls for the book's TTL.
func (k *Book) New(opID, registrationID, status string) *enrollment.Operation {
	return &enrollment.Operation{
		OperationID:    opID,
		RegistrationID: registrationID,
		Status:         status,
		ExpiresAt:      k.now().UTC().Add(k.ttl),
	}
}

// PastDeadline reports whether op is assigning past its deadline: its run
// is dead or late, and the first reader closes it as failed (Expire).
func (k *Book) PastDeadline(op *enrollment.Operation) bool {
	return op.Status == enrollment.RegistrationAssigning && !op.Deadline.IsZero() && !k.now().Before(op.Deadline)
}

// Expire replaces an assigning operation whose deadline passed by failed,
// unless a final state replaced it meanwhile, and returns what is stored
// now.
func (k *Book) Expire(ctx context.Context, op *enrollment.Operation) (*enrollment.Operation, error) {
	var out *enrollment.Operation
	err := k.b.Update(ctx, func(tx store.Tx) error {
		ops := k.ops.In(tx)
		cur, err := ops.Get(ctx, op.OperationID)
		if err != nil {
			return err
		}
		if !k.PastDeadline(cur) {
			out = cur
			return nil
		}
		f := k.Failed(cur.OperationID, cur.RegistrationID, dps.CodeAssignmentTimedOut, MessageTimedOut)
		f.ExpiresAt = cur.ExpiresAt
		if _, err := ops.Put(ctx, f, store.Condition{IfMatch: cur.ETag}); err != nil {
			return err
		}
		out = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("operations: close expired operation: %w", err)
	}
	return out, nil
}

// Failed is a failed final operation with the errorCode and message.
func (k *Book) Failed(opID, regID string, code int, msg string) *enrollment.Operation {
	op := k.New(opID, regID, enrollment.RegistrationFailed)
	op.ErrorCode, op.ErrorMessage = code, msg
	op.Registration = &enrollment.Registration{RegistrationID: regID, Status: enrollment.RegistrationFailed, ErrorCode: code, ErrorMessage: msg}
	return op
}

// Close writes the final state o of an operation in tx: it
// creates it when no assigning state was written (yet), replaces the
// assigning state by compare-and-swap, and returns ErrClosed when
// a final state is there already, which must roll the transaction back.
func (k *Book) Close(ctx context.Context, tx store.Tx, o *enrollment.Operation) error {
	ops := k.ops.In(tx)
	cur, err := ops.Get(ctx, o.OperationID)
	cond := store.Condition{IfNoneMatch: true}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("operations: read operation: %w", err)
	case cur.Status != enrollment.RegistrationAssigning || enrollment.Key(cur.RegistrationID) != enrollment.Key(o.RegistrationID):
		return ErrClosed
	default:
		cond = store.Condition{IfMatch: cur.ETag}
	}
	if _, err := ops.Put(ctx, o, cond); err != nil {
		return fmt.Errorf("operations: store operation: %w", err)
	}
	return k.replacePrevious(ctx, tx, o)
}

// replacePrevious makes o, in tx, the device's current final operation
// and deletes the one that was current before: a device polls the
// operation its last register answered, so the one before is of no use,
// and a device registering in a loop keeps one operation instead of one
// per request for OperationTTL. A poll of the deleted one answers not
// found (404), as Azure answers an unknown operation. Only final
// operations are ever current: an assigning one is never deleted here, its
// run may still commit and a device registering again must still find it
// (inflight). Point reads and writes only, so concurrent registrations of
// other devices never conflict on it.
func (k *Book) replacePrevious(ctx context.Context, tx store.Tx, o *enrollment.Operation) error {
	regKey, opKey := enrollment.Key(o.RegistrationID), o.StoreKey()
	it, err := tx.Get(ctx, BucketCurrent, regKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("operations: read current operation: %w", err)
	case string(it.Value) != opKey:
		err := k.ops.In(tx).Delete(ctx, string(it.Value), store.Condition{})
		if err != nil && !errors.Is(err, store.ErrNotFound) { // pruned already
			return fmt.Errorf("operations: delete replaced operation: %w", err)
		}
	}
	if _, err := tx.Put(ctx, BucketCurrent, regKey, []byte(opKey), store.Condition{}); err != nil {
		return fmt.Errorf("operations: store current operation: %w", err)
	}
	return nil
}

// Final stores a final state that comes without a record
// (failed), in its own transaction.
func (k *Book) Final(ctx context.Context, o *enrollment.Operation) error {
	return k.b.Update(ctx, func(tx store.Tx) error { return k.Close(ctx, tx, o) })
}
