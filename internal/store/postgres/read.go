package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/zdps/zdps/internal/store"
)

// Conditional transactions (store.Conditional) run at READ COMMITTED, where
// PostgreSQL takes no predicate locks and aborts nothing for a
// serialization failure: the guarantees come from the statements instead.
// The transaction remembers what it read of each key it has not written
// yet; a later Put or Delete of that key becomes a compare-and-swap on the
// read (If-Match the ETag read, or If-None-Match when it read nothing), and
// when that finds the key changed meanwhile the whole transaction runs
// again, as after a serialization failure under SERIALIZABLE. A key the
// transaction wrote is locked by its row until the end (once the write is
// sent: pipeline.go), so later writes of it need no guard.
//
// What it read or wrote is also what a later Get of the key answers,
// without a round trip: the first read is the one every later write is
// checked against, and a pending write is what the key holds for this
// transaction.

// errLostRace: a conditional transaction's write found a key changed since
// the transaction read it; the attempt is rolled back and run again.
var errLostRace = errors.New("postgres: a key changed between this transaction's read and its write")

type readKey struct {
	bucket store.Bucket
	key    string
}

type readState struct {
	exists bool
	etag   string
	value  []byte
	// own: this transaction wrote (or deleted) the key.
	own bool
	// locked: read with Lock.
	locked bool
}

func (t *tx) tracking() bool { return t.conditional && t.writable }

func (t *tx) entry(b store.Bucket, key string) (readState, bool) {
	r, ok := t.reads[readKey{b, key}]
	return r, ok
}

func (t *tx) set(b store.Bucket, key string, r readState) {
	if t.reads == nil {
		t.reads = map[readKey]readState{}
	}
	t.reads[readKey{b, key}] = r
}

// cached answers a Get (or, with lock, a Lock) from what the transaction
// read or wrote, when it can.
func (t *tx) cached(b store.Bucket, key string, lock bool) (store.Item, error, bool) {
	if !t.tracking() {
		return store.Item{}, nil, false
	}
	r, ok := t.entry(b, key)
	if !ok || (lock && !r.locked && !r.own) {
		return store.Item{}, nil, false
	}
	if !r.exists {
		return store.Item{}, store.ErrNotFound, true
	}
	return store.Item{Key: key, Value: bytes.Clone(r.value), ETag: r.etag}, nil, true
}

// remember records a read. A lock that finds the key changed since an
// earlier plain read of it means fn may have used a stale value: the
// attempt runs again.
func (t *tx) remember(b store.Bucket, key string, exists bool, etag string, value []byte, locked bool) {
	if !t.tracking() {
		return
	}
	if r, ok := t.entry(b, key); ok {
		if locked && !r.own && (r.exists != exists || r.etag != etag) && t.retryErr == nil {
			t.retryErr = fmt.Errorf("%w: %s/%q", errLostRace, b, key)
		}
		r.locked = r.locked || locked
		t.set(b, key, r)
		return
	}
	t.set(b, key, readState{exists: exists, etag: etag, value: bytes.Clone(value), locked: locked})
}

// wrote records a write of this transaction.
func (t *tx) wrote(b store.Bucket, key, etag string, value []byte) {
	if t.tracking() {
		t.set(b, key, readState{exists: true, etag: etag, value: bytes.Clone(value), own: true})
	}
}

// deleted records a delete of this transaction.
func (t *tx) deleted(b store.Bucket, key string) {
	if t.tracking() {
		t.set(b, key, readState{own: true})
	}
}

// forget drops what is known of a key (a raw write).
func (t *tx) forget(b store.Bucket, key string) {
	delete(t.reads, readKey{b, key})
}

// guard returns the condition a write of key must hold: cond itself, or,
// in a conditional transaction that read the key and has not written it,
// a compare-and-swap on that read. guarded reports the latter. A cond that
// the read already refutes fails as it would have at the read.
func (t *tx) guard(b store.Bucket, key string, cond store.Condition) (store.Condition, bool, error) {
	if !t.tracking() {
		return cond, false, nil
	}
	r, ok := t.entry(b, key)
	if !ok || r.own {
		return cond, false, nil
	}
	if err := store.CheckCondition(r.exists, r.etag, cond); err != nil {
		return cond, false, err
	}
	if cond.IfNoneMatch && cond.IfMatch != "" {
		return cond, false, nil // contradictory; Put answers it
	}
	if r.exists {
		return store.Condition{IfMatch: r.etag}, true, nil
	}
	return store.Condition{IfNoneMatch: true}, true, nil
}

// lost turns the failure of a guarded write into a retry of the
// transaction when the key changed after the read (exists and etag are
// what it is now), so that what fn computed from it is stale. An unguarded
// write's failure, or one on a key still as read, is the caller's answer.
func (t *tx) lost(guarded bool, b store.Bucket, key string, exists bool, etag string, err error) error {
	if !guarded {
		return err
	}
	if r, _ := t.entry(b, key); r.exists == exists && (!exists || r.etag == etag) {
		return err
	}
	e := fmt.Errorf("%w: %s/%q", errLostRace, b, key)
	if t.retryErr == nil {
		t.retryErr = e
	}
	return e
}

// Prefetch reads keys in one round trip (with the BEGIN and the pending
// writes) and remembers them, so that the transaction's later Gets and
// Locks of them are answered without one. The statements run in order, so
// a read after a lock sees what committed before the lock was granted. It
// does nothing outside a conditional transaction, where reads are not
// remembered.
func (t *tx) Prefetch(ctx context.Context, reads []store.Read) error {
	if !t.tracking() || len(reads) == 0 {
		return nil
	}
	type got struct {
		item  store.Item
		found bool
	}
	res := make([]got, len(reads))
	err := t.send(ctx, func(q *pgx.Batch) {
		t.queueReads(q, reads, func(i int, it store.Item) { res[i] = got{item: it, found: true} })
	})
	if err != nil {
		return t.note(err, "prefetch")
	}
	for i, r := range reads {
		if _, known := t.entry(r.Bucket, r.Key); known && !r.Lock {
			continue
		}
		v := res[i].item.Value
		if v == nil {
			v = []byte{}
		}
		t.remember(r.Bucket, r.Key, res[i].found, res[i].item.ETag, v, r.Lock)
	}
	return t.retryErr
}
