package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/zdps/zdps/internal/store"
)

// queries are the statements on one schema, built once by Open.
type queries struct {
	get, getETag, insertNew, upsert, updateAny, updateIf, deleteAny, deleteIf string
	scan, scanBounded, buckets, putRaw, lockShare, lockExclusive              string
	// The deferred forms of insertNew, upsert and updateIf (pipeline.go):
	// they fail with division_by_zero when they write nothing, which aborts
	// the transaction, so that a COMMIT pipelined after them never commits
	// half of it.
	insertNewOrFail, upsertOrFail, updateIfOrFail, deleteIfOrFail string
	// group holds the multi-row forms of the deferred writes by kind,
	// getMany the read of several keys (group.go).
	group   map[writeKind]string
	getMany string
}

func newQueries(schema string) queries {
	kv := pgx.Identifier{schema, "kv"}.Sanitize()
	q := queries{
		get:           `SELECT value, etag FROM ` + kv + ` WHERE bucket = $1 AND key = $2`,
		lockShare:     `SELECT value, etag FROM ` + kv + ` WHERE bucket = $1 AND key = $2 FOR SHARE`,
		lockExclusive: `SELECT value, etag FROM ` + kv + ` WHERE bucket = $1 AND key = $2 FOR UPDATE`,
		getETag:       `SELECT etag FROM ` + kv + ` WHERE bucket = $1 AND key = $2`,
		// IfNoneMatch: a create; nothing inserted means the key is taken.
		insertNew: `INSERT INTO ` + kv + ` (bucket, key, value, etag) VALUES ($1, $2, $3, $4) ON CONFLICT (bucket, key) DO NOTHING`,
		// Unconditional; the WHERE keeps a (2^-64) colliding new ETag
		// from replacing an equal old one, which the caller then retries.
		upsert: `INSERT INTO ` + kv + ` AS t (bucket, key, value, etag) VALUES ($1, $2, $3, $4)
			ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value, etag = excluded.etag WHERE t.etag <> excluded.etag`,
		// If-Match "*" (and, with deleteAny, the unconditional delete).
		updateAny: `UPDATE ` + kv + ` SET value = $3, etag = $4 WHERE bucket = $1 AND key = $2 AND etag <> $4`,
		// If-Match with an ETag: the compare-and-swap itself.
		updateIf:  `UPDATE ` + kv + ` SET value = $3, etag = $4 WHERE bucket = $1 AND key = $2 AND etag = $5`,
		deleteAny: `DELETE FROM ` + kv + ` WHERE bucket = $1 AND key = $2`,
		deleteIf:  `DELETE FROM ` + kv + ` WHERE bucket = $1 AND key = $2 AND etag = $3`,
		// Keyset pagination: the index range starts at the later of the
		// prefix and the continuation and, when the prefix has a
		// successor, stops before it. LIMIT NULL is no limit.
		scan: `SELECT key, value, etag FROM ` + kv + ` WHERE bucket = $1 AND key >= $2 AND key > $3
			ORDER BY key LIMIT $4`,
		scanBounded: `SELECT key, value, etag FROM ` + kv + ` WHERE bucket = $1 AND key >= $2 AND key > $3 AND key < $5
			ORDER BY key LIMIT $4`,
		// Distinct buckets by skipping through the primary key, one
		// index probe per bucket instead of a scan of every row.
		buckets: `WITH RECURSIVE b(bucket) AS (
				(SELECT bucket FROM ` + kv + ` ORDER BY bucket LIMIT 1)
				UNION ALL
				SELECT (SELECT bucket FROM ` + kv + ` WHERE bucket > b.bucket ORDER BY bucket LIMIT 1) FROM b WHERE b.bucket IS NOT NULL
			) SELECT bucket FROM b WHERE bucket IS NOT NULL`,
		putRaw: `INSERT INTO ` + kv + ` (bucket, key, value, etag) VALUES ($1, $2, $3, $4)
			ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value, etag = excluded.etag`,
	}
	orFail := func(write string) string {
		return `WITH w AS (` + write + ` RETURNING 1) SELECT 1 / count(*) FROM w`
	}
	q.insertNewOrFail, q.upsertOrFail, q.updateIfOrFail = orFail(q.insertNew), orFail(q.upsert), orFail(q.updateIf)
	q.deleteIfOrFail = orFail(q.deleteIf)
	q.group, q.getMany = groupQueries(kv), getManyQuery(kv)
	return q
}

type tx struct {
	b        *Backend
	conn     *pgxpool.Conn
	writable bool
	// begin is the BEGIN statement until it is sent, pipelined with the
	// transaction's first statement ("" after, and for a one-shot read).
	begin string
	// oneShot: a single statement outside any transaction (ViewOne).
	oneShot bool
	sent    int
	// handOver, for a read of ViewEach, takes the one statement to send
	// in ViewEach's batch (each.go).
	handOver chan<- oneShotRead
	// retryErr is the first serialization failure, deadlock or lost
	// compare-and-swap a statement hit; the transaction is aborted from
	// then on and runs again.
	retryErr error
	// failErr is a deferred write's failure that is the caller's answer
	// (a create that found the key taken); the transaction is aborted.
	failErr error
	// conditional: a READ COMMITTED transaction of store.Conditional.
	// reads holds what it read or wrote of each key (read.go); pending the
	// writes not sent yet (pipeline.go).
	conditional bool
	reads       map[readKey]readState
	pending     []pendingWrite
	// grouped: deferred writes of a kind, and runs of plain reads, go out
	// as one statement each (group.go); off after a first attempt failed.
	grouped bool
}

var (
	_ store.BucketLister = (*tx)(nil)
	_ store.RawWriter    = (*tx)(nil)
	_ store.Locker       = (*tx)(nil)
	_ store.Prefetcher   = (*tx)(nil)
	_ store.EachReader   = (*Backend)(nil)
)

var (
	errReadOnly = errors.New("postgres: write in a read-only transaction")
	errEmptyKey = errors.New("postgres: empty key")
	errOneShot  = errors.New("postgres: a one-shot read ran more than one statement")
)

// note records err if it aborted the transaction for a retryable reason,
// and returns it wrapped with what was being done.
func (t *tx) note(err error, format string, args ...any) error {
	if isRetryable(err) && t.retryErr == nil {
		t.retryErr = err
	}
	return fmt.Errorf("postgres: "+format+": %w", append(args, err)...)
}

// exec runs one statement (after the pending writes) and returns the rows
// it touched.
func (t *tx) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := t.send(ctx, func(b *pgx.Batch) {
		b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error { n = ct.RowsAffected(); return nil })
	})
	return n, err
}

// current returns whether key exists and its ETag.
func (t *tx) current(ctx context.Context, b store.Bucket, key string) (bool, string, error) {
	var etag string
	found := false
	err := t.send(ctx, func(q *pgx.Batch) {
		q.Queue(t.b.q.getETag, string(b), []byte(key)).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&etag)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
	})
	if err != nil {
		return false, "", t.note(err, "read %s/%q", b, key)
	}
	return found, etag, nil
}

func (t *tx) Get(ctx context.Context, b store.Bucket, key string) (store.Item, error) {
	if it, err, ok := t.cached(b, key, false); ok {
		return it, err
	}
	return t.read(ctx, t.b.q.get, b, key)
}

// Lock reads key and locks its row until the transaction ends; in a
// read-only transaction (where PostgreSQL refuses row locks) it reads.
func (t *tx) Lock(ctx context.Context, b store.Bucket, key string, exclusive bool) (store.Item, error) {
	if it, err, ok := t.cached(b, key, true); ok {
		return it, err
	}
	switch {
	case !t.writable:
		return t.read(ctx, t.b.q.get, b, key)
	case exclusive:
		return t.read(ctx, t.b.q.lockExclusive, b, key)
	}
	return t.read(ctx, t.b.q.lockShare, b, key)
}

func (t *tx) read(ctx context.Context, sql string, b store.Bucket, key string) (store.Item, error) {
	if err := ctx.Err(); err != nil {
		return store.Item{}, err
	}
	it := store.Item{Key: key}
	found := false
	err := t.send(ctx, func(q *pgx.Batch) {
		q.Queue(sql, string(b), []byte(key)).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&it.Value, &it.ETag)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
	})
	if err != nil {
		return store.Item{}, t.note(err, "get %s/%q", b, key)
	}
	if !found {
		t.remember(b, key, false, "", nil, sql != t.b.q.get)
		return store.Item{}, store.ErrNotFound
	}
	if it.Value == nil {
		it.Value = []byte{}
	}
	t.remember(b, key, true, it.ETag, it.Value, sql != t.b.q.get)
	return it, nil
}

func (t *tx) writeCheck(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !t.writable {
		return errReadOnly
	}
	if key == "" {
		return errEmptyKey
	}
	return nil
}

func (t *tx) Put(ctx context.Context, b store.Bucket, key string, value []byte, cond store.Condition) (string, error) {
	if err := t.writeCheck(ctx, key); err != nil {
		return "", err
	}
	if value == nil {
		value = []byte{} // the column is NOT NULL; nil and empty read back alike
	}
	k := []byte(key)
	cond, guarded, err := t.guard(b, key, cond)
	if err != nil {
		return "", err
	}
	if etag, ok, err := t.deferPut(b, key, value, cond, guarded); ok || err != nil {
		return etag, err
	}
	// Each case is one statement that checks the condition and writes
	// atomically; only when it touched nothing does a read tell why.
	for {
		etag := newETag(cond.IfMatch)
		var n int64
		var err error
		switch {
		case cond.IfNoneMatch && cond.IfMatch != "":
			// Contradictory; CheckCondition gives the answer.
			n, err = 0, nil
		case cond.IfNoneMatch:
			n, err = t.exec(ctx, t.b.q.insertNew, string(b), k, value, etag)
		case cond.IfMatch == "":
			n, err = t.exec(ctx, t.b.q.upsert, string(b), k, value, etag)
		case cond.IfMatch == "*":
			n, err = t.exec(ctx, t.b.q.updateAny, string(b), k, value, etag)
		default:
			n, err = t.exec(ctx, t.b.q.updateIf, string(b), k, value, etag, cond.IfMatch)
		}
		if err != nil {
			return "", t.note(err, "put %s/%q", b, key)
		}
		if n == 1 {
			t.wrote(b, key, etag, value)
			return etag, nil
		}
		exists, old, err := t.current(ctx, b, key)
		if err != nil {
			return "", err
		}
		if err := store.CheckCondition(exists, old, cond); err != nil {
			return "", t.lost(guarded, b, key, exists, old, err)
		}
		if old != etag {
			return "", fmt.Errorf("postgres: put %s/%q: condition holds but nothing was written", b, key)
		}
		// The new ETag collided with the stored one: draw another.
	}
}

func (t *tx) Delete(ctx context.Context, b store.Bucket, key string, cond store.Condition) error {
	if err := t.writeCheck(ctx, key); err != nil {
		return err
	}
	k := []byte(key)
	guarded, err := false, error(nil)
	if !cond.IfNoneMatch { // a delete If-None-Match never deletes: nothing to guard
		if cond, guarded, err = t.guard(b, key, cond); err != nil {
			return err
		}
	}
	if guarded {
		// A delete of what the transaction read: known absent, or a
		// compare-and-swap on the read that waits for the next round trip
		// (pipeline.go).
		if cond.IfNoneMatch {
			return store.ErrNotFound
		}
		t.pending = append(t.pending, pendingWrite{b: b, key: key, sql: t.b.q.deleteIfOrFail, args: []any{string(b), k, cond.IfMatch}, kind: kindDeleteIf})
		t.deleted(b, key)
		return nil
	}
	var n int64
	switch {
	case cond.IfNoneMatch:
		// Never deletes: Conflict when present, NotFound when absent.
	case cond.IfMatch == "" || cond.IfMatch == "*":
		n, err = t.exec(ctx, t.b.q.deleteAny, string(b), k)
	default:
		n, err = t.exec(ctx, t.b.q.deleteIf, string(b), k, cond.IfMatch)
	}
	if err != nil {
		return t.note(err, "delete %s/%q", b, key)
	}
	if n == 1 {
		t.deleted(b, key)
		return nil
	}
	exists, old, err := t.current(ctx, b, key)
	if err != nil {
		return err
	}
	if !exists {
		return t.lost(guarded, b, key, false, "", store.ErrNotFound)
	}
	if err := store.CheckCondition(exists, old, cond); err != nil {
		return t.lost(guarded, b, key, exists, old, err)
	}
	return fmt.Errorf("postgres: delete %s/%q: condition holds but nothing was deleted", b, key)
}

func (t *tx) Scan(ctx context.Context, b store.Bucket, prefix, after string, limit int) ([]store.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lim *int64
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	sql, args := t.b.q.scan, []any{string(b), []byte(prefix), []byte(after), lim}
	if hi := successor([]byte(prefix)); hi != nil {
		sql, args = t.b.q.scanBounded, append(args, hi)
	}
	var out []store.Item
	err := t.send(ctx, func(q *pgx.Batch) {
		q.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k []byte
				var it store.Item
				if err := rows.Scan(&k, &it.Value, &it.ETag); err != nil {
					return err
				}
				it.Key = string(k)
				if it.Value == nil {
					it.Value = []byte{}
				}
				out = append(out, it)
			}
			return rows.Err()
		})
	})
	if err != nil {
		return nil, t.note(err, "scan %s", b)
	}
	return out, nil
}

// successor is the smallest byte string greater than every string that
// starts with p, or nil when there is none (p empty or all 0xff).
func successor(p []byte) []byte {
	q := bytes.Clone(p)
	for len(q) > 0 {
		if last := len(q) - 1; q[last] < 0xff {
			q[last]++
			return q
		}
		q = q[:len(q)-1]
	}
	return nil
}

// Buckets lists the buckets holding at least one key.
func (t *tx) Buckets(ctx context.Context) ([]store.Bucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Bucket
	err := t.send(ctx, func(q *pgx.Batch) {
		q.Queue(t.b.q.buckets).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					return err
				}
				out = append(out, store.Bucket(n))
			}
			return rows.Err()
		})
	})
	if err != nil {
		return nil, t.note(err, "list buckets")
	}
	return out, nil
}

// PutRaw stores value with the given ETag, unconditionally.
func (t *tx) PutRaw(ctx context.Context, b store.Bucket, key string, value []byte, etag string) error {
	if err := t.writeCheck(ctx, key); err != nil {
		return err
	}
	if etag == "" || len(etag) > 255 {
		return errors.New("postgres: PutRaw: ETag must have 1 to 255 bytes")
	}
	if value == nil {
		value = []byte{}
	}
	if _, err := t.exec(ctx, t.b.q.putRaw, string(b), []byte(key), value, etag); err != nil {
		return t.note(err, "put %s/%q", b, key)
	}
	t.forget(b, key)
	return nil
}

// newETag returns a random 64-bit hex ETag different from not (the ETag
// an If-Match names, which the write must replace).
func newETag(not string) string {
	for {
		var rb [8]byte
		_, _ = rand.Read(rb[:]) // never fails (crypto/rand, Go 1.24+)
		if e := hex.EncodeToString(rb[:]); e != not {
			return e
		}
	}
}
