package postgres

import (
	"bytes"
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/zdps/zdps/internal/store"
)

// Pipelining. Every statement of a transaction goes out in a pgx.Batch
// with what is queued before it: the BEGIN rides with the first statement,
// and in a conditional transaction the writes whose failure has one known
// meaning wait for the next read, Delete or the COMMIT, so that a
// registration's writes are one round trip together with its COMMIT.
//
// A deferred write is sent in a form that fails with division_by_zero when
// it writes nothing, so that the transaction is aborted and a COMMIT
// pipelined after it never commits the rest. Its failure means:
//
//   - a compare-and-swap on what the transaction read (read.go), or an
//     unconditional write (that fails only when its random new ETag equals
//     the stored one): a retry of the whole transaction;
//   - a create (If-None-Match) of a key the transaction did not read: the
//     key is taken, store.ErrConflict, returned by the call that sent it
//     (a later read, Delete, or Update itself). A conditional transaction's
//     fn must therefore treat any error as final, which the Backend
//     contract asks of every fn anyway.
//
// A Delete of a key the transaction read is deferred the same way (its
// failure: a retry). Other writes (If-Match "*", an If-Match ETag on a key
// not read, a Delete of a key not read) are sent at once, because their
// failure needs a read to explain.

// pendingWrite is a deferred write.
type pendingWrite struct {
	b      store.Bucket
	key    string
	sql    string
	args   []any
	kind   writeKind
	create bool
}

// errDivisionByZero is the SQLSTATE of a deferred write that wrote nothing.
const errDivisionByZero = "22012"

// errCommitRolledBack: COMMIT answered ROLLBACK, the transaction having
// been aborted by an error fn did not return.
var errCommitRolledBack = errors.New("postgres: the transaction was aborted; COMMIT rolled it back")

// deferPut queues a Put of a conditional transaction when its failure has
// one meaning; ok reports that it did.
func (t *tx) deferPut(b store.Bucket, key string, value []byte, cond store.Condition, guarded bool) (etag string, ok bool, err error) {
	if !t.tracking() {
		return "", false, nil
	}
	k := []byte(key)
	etag = newETag(cond.IfMatch)
	w := pendingWrite{b: b, key: key}
	// The caller may reuse value once Put returns; the batch encodes it
	// when it is sent.
	v := bytes.Clone(value)
	switch {
	case cond.IfNoneMatch && cond.IfMatch != "":
		return "", false, nil
	case cond.IfNoneMatch:
		w.sql, w.args, w.kind, w.create = t.b.q.insertNewOrFail, []any{string(b), k, v, etag}, kindInsertNew, !guarded
	case cond.IfMatch == "":
		w.sql, w.args, w.kind = t.b.q.upsertOrFail, []any{string(b), k, v, etag}, kindUpsert
	case guarded:
		w.sql, w.args, w.kind = t.b.q.updateIfOrFail, []any{string(b), k, v, etag, cond.IfMatch}, kindUpdateIf
	default:
		return "", false, nil
	}
	t.pending = append(t.pending, w)
	t.wrote(b, key, etag, value)
	return etag, true, nil
}

// send sends, in one round trip, the BEGIN if not sent yet, the pending
// writes, and what queue adds.
func (t *tx) send(ctx context.Context, queue func(*pgx.Batch)) error {
	if t.retryErr != nil {
		return t.retryErr
	}
	if t.failErr != nil {
		return t.failErr
	}
	if t.oneShot {
		if t.sent++; t.sent > 1 {
			return errOneShot
		}
		if t.handOver != nil {
			r := oneShotRead{queue: queue, done: make(chan error, 1)}
			t.handOver <- r
			return <-r.done
		}
	}
	batch := &pgx.Batch{}
	if t.begin != "" {
		batch.Queue(t.begin)
		t.begin = ""
	}
	groups := t.group(t.pending)
	t.pending = nil
	done := 0
	queueGroups(batch, groups, &done)
	if queue != nil {
		queue(batch)
	}
	qctx, cancel := context.WithTimeout(ctx, t.b.queryTimeout)
	defer cancel()
	err := t.conn.SendBatch(qctx, batch).Close()
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == errDivisionByZero && done < len(groups) {
		return t.failedGroup(groups[done])
	}
	if isRetryable(err) && t.retryErr == nil {
		t.retryErr = err
	}
	return err
}

// commit sends the pending writes and COMMIT in one round trip; a
// transaction that sent nothing has nothing to commit.
func (t *tx) commit(ctx context.Context) error {
	if t.failErr != nil {
		return t.failErr
	}
	if t.begin != "" && len(t.pending) == 0 {
		return nil
	}
	return t.send(ctx, func(b *pgx.Batch) {
		b.Queue("commit").Exec(func(ct pgconn.CommandTag) error {
			if ct.String() == "ROLLBACK" {
				return errCommitRolledBack
			}
			return nil
		})
	})
}
