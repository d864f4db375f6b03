package postgres

import (
	"errors"
	"fmt"

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
// transaction wrote is locked by its row until the end, so later writes of
// it need no guard.

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
}

// remember records the first read of a key not yet written.
func (t *tx) remember(b store.Bucket, key string, exists bool, etag string) {
	if !t.conditional || !t.writable {
		return
	}
	k := readKey{b, key}
	if _, ok := t.reads[k]; ok {
		return
	}
	if t.reads == nil {
		t.reads = map[readKey]readState{}
	}
	t.reads[k] = readState{exists: exists, etag: etag}
}

// wrote marks key as written: its row is locked by this transaction now.
func (t *tx) wrote(b store.Bucket, key string) {
	if !t.conditional {
		return
	}
	if t.reads == nil {
		t.reads = map[readKey]readState{}
	}
	t.reads[readKey{b, key}] = readState{exists: true, etag: ownWrite}
}

// ownWrite marks a key this transaction wrote.
const ownWrite = "\x00own"

// guard returns the condition a write of key must hold: cond itself, or,
// in a conditional transaction that read the key and has not written it,
// a compare-and-swap on that read. guarded reports the latter. A cond that
// the read already refutes fails as it would have at the read.
func (t *tx) guard(b store.Bucket, key string, cond store.Condition) (store.Condition, bool, error) {
	if !t.conditional {
		return cond, false, nil
	}
	r, ok := t.reads[readKey{b, key}]
	if !ok || r.etag == ownWrite {
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
	if r := t.reads[readKey{b, key}]; r.exists == exists && (!exists || r.etag == etag) {
		return err
	}
	e := fmt.Errorf("%w: %s/%q", errLostRace, b, key)
	if t.retryErr == nil {
		t.retryErr = e
	}
	return e
}
