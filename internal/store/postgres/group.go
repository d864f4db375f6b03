package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/zdps/zdps/internal/store"
)

// Grouped statements. PostgreSQL spends more on each statement (bind,
// executor start and end, its messages) than on writing one small row, so
// a transaction's deferred writes of one kind go out as one multi-row
// statement over arrays (unnest), and so do the plain reads of a
// Prefetch. A registration's seven writes are two statements, its
// transaction's five reads two (the lock, then the plain reads it must
// precede), and an audit seal of a thousand events three instead of three
// thousand.
//
// A grouped write fails, like a single one, with division_by_zero when it
// wrote fewer rows than it carried; which row is then unknown. A group
// holding a create of a key the transaction did not read (whose failure
// would be the caller's ErrConflict) is therefore retried, and every
// attempt after the first sends its writes one statement each, so the
// failure gets its exact meaning. Writes of the same key never share a
// group: the writes are cut into runs of distinct keys, and only within a
// run are they regrouped by kind (writes of distinct keys in one
// transaction commute).

// writeKind is the statement of a deferred write.
type writeKind int

const (
	kindInsertNew writeKind = iota + 1 // insertNewOrFail: b, k, v, etag
	kindUpsert                         // upsertOrFail: b, k, v, etag
	kindUpdateIf                       // updateIfOrFail: b, k, v, etag, old
	kindDeleteIf                       // deleteIfOrFail: b, k, old
)

// errGroupLost: a grouped write wrote fewer rows than it carried.
var errGroupLost = errors.New("postgres: a grouped write found a key taken or changed")

// groupQueries are the multi-row forms, by kind.
func groupQueries(kv string) map[writeKind]string {
	orFail := func(write string) string {
		return `WITH w AS (` + write + ` RETURNING 1) SELECT 1 / (count(*) / cardinality($1::text[])) FROM w`
	}
	return map[writeKind]string{
		kindInsertNew: orFail(`INSERT INTO ` + kv + ` (bucket, key, value, etag)
			SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[])
			ON CONFLICT (bucket, key) DO NOTHING`),
		kindUpsert: orFail(`INSERT INTO ` + kv + ` AS t (bucket, key, value, etag)
			SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[])
			ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value, etag = excluded.etag WHERE t.etag <> excluded.etag`),
		kindUpdateIf: orFail(`UPDATE ` + kv + ` AS t SET value = u.value, etag = u.etag
			FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::text[]) AS u(bucket, key, value, etag, old)
			WHERE t.bucket = u.bucket AND t.key = u.key AND t.etag = u.old`),
		kindDeleteIf: orFail(`DELETE FROM ` + kv + ` AS t
			USING unnest($1::text[], $2::bytea[], $3::text[]) AS u(bucket, key, old)
			WHERE t.bucket = u.bucket AND t.key = u.key AND t.etag = u.old`),
	}
}

// getMany reads several keys in one statement; a key that is absent has
// no row. LATERAL makes it one primary-key probe per key.
func getManyQuery(kv string) string {
	return `SELECT u.bucket, u.key, t.value, t.etag FROM unnest($1::text[], $2::bytea[]) AS u(bucket, key)
		CROSS JOIN LATERAL (SELECT value, etag FROM ` + kv + ` WHERE bucket = u.bucket AND key = u.key) t`
}

// writeGroup is one statement of deferred writes.
type writeGroup struct {
	writes []pendingWrite
	sql    string
	args   []any
}

// group makes the statements of pend: one per write when grouping is off
// (an attempt after the first), else one per kind within each run of
// distinct keys.
func (t *tx) group(pend []pendingWrite) []writeGroup {
	var out []writeGroup
	if !t.grouped {
		for _, w := range pend {
			out = append(out, writeGroup{writes: []pendingWrite{w}, sql: w.sql, args: w.args})
		}
		return out
	}
	for len(pend) > 0 {
		seen := map[readKey]bool{}
		n := 0
		for n < len(pend) && !seen[readKey{pend[n].b, pend[n].key}] {
			seen[readKey{pend[n].b, pend[n].key}] = true
			n++
		}
		run := pend[:n]
		pend = pend[n:]
		var kinds []writeKind
		byKind := map[writeKind][]pendingWrite{}
		for _, w := range run {
			if byKind[w.kind] == nil {
				kinds = append(kinds, w.kind)
			}
			byKind[w.kind] = append(byKind[w.kind], w)
		}
		for _, k := range kinds {
			out = append(out, t.groupOf(k, byKind[k]))
		}
	}
	return out
}

// groupOf is the statement of ws, writes of kind k to distinct keys.
func (t *tx) groupOf(k writeKind, ws []pendingWrite) writeGroup {
	if len(ws) == 1 {
		return writeGroup{writes: ws, sql: ws[0].sql, args: ws[0].args}
	}
	// The single form's arguments, column by column: bucket, key, then
	// value and ETag, or the old ETag.
	cols := len(ws[0].args)
	arrays := make([]any, cols)
	for c := range cols {
		switch ws[0].args[c].(type) {
		case string:
			a := make([]string, len(ws))
			for i, w := range ws {
				a[i] = w.args[c].(string)
			}
			arrays[c] = a
		default:
			a := make([][]byte, len(ws))
			for i, w := range ws {
				a[i] = w.args[c].([]byte)
			}
			arrays[c] = a
		}
	}
	return writeGroup{writes: ws, sql: t.b.q.group[k], args: arrays}
}

// failedGroup returns the error of a deferred write statement g that wrote
// nothing (or less than it carried).
func (t *tx) failedGroup(g writeGroup) error {
	if len(g.writes) == 1 {
		w := g.writes[0]
		if w.create {
			t.failErr = fmt.Errorf("postgres: put %s/%q: %w", w.b, w.key, store.ErrConflict)
			return t.failErr
		}
		t.retryErr = fmt.Errorf("%w: %s/%q", errLostRace, w.b, w.key)
		return t.retryErr
	}
	t.retryErr = fmt.Errorf("%w (%d writes): %w", errGroupLost, len(g.writes), errLostRace)
	return t.retryErr
}

// queueGroups adds the statements of groups to batch; done counts those
// that answered.
func queueGroups(batch *pgx.Batch, groups []writeGroup, done *int) {
	for _, g := range groups {
		batch.Queue(g.sql, g.args...).Exec(func(pgconn.CommandTag) error { *done++; return nil })
	}
}

// queueReads adds reads to batch: each lock on its own (what follows a
// lock must see what committed before it was granted), each run of plain
// reads as one statement. answer gets each read's index and what it found;
// a read that found nothing gets no answer.
func (t *tx) queueReads(batch *pgx.Batch, reads []store.Read, answer func(i int, it store.Item)) {
	for i := 0; i < len(reads); {
		j := i + 1
		if !reads[i].Lock && t.grouped {
			for j < len(reads) && !reads[j].Lock {
				j++
			}
		}
		if j-i == 1 {
			n := i
			t.queueGet(batch, reads[i], func(it store.Item) { answer(n, it) })
			i = j
			continue
		}
		run := reads[i:j]
		buckets, keys := make([]string, len(run)), make([][]byte, len(run))
		at := map[readKey][]int{}
		for n, r := range run {
			buckets[n], keys[n] = string(r.Bucket), []byte(r.Key)
			at[readKey{r.Bucket, r.Key}] = append(at[readKey{r.Bucket, r.Key}], i+n)
		}
		batch.Queue(t.b.q.getMany, buckets, keys).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var b string
				var k []byte
				var it store.Item
				if err := rows.Scan(&b, &k, &it.Value, &it.ETag); err != nil {
					return err
				}
				for _, n := range at[readKey{store.Bucket(b), string(k)}] {
					answer(n, it)
				}
			}
			return rows.Err()
		})
		i = j
	}
}

// queueGet adds one read (or lock) of r to batch.
func (t *tx) queueGet(batch *pgx.Batch, r store.Read, found func(store.Item)) {
	sql := t.b.q.get
	switch {
	case r.Lock && r.Exclusive:
		sql = t.b.q.lockExclusive
	case r.Lock:
		sql = t.b.q.lockShare
	}
	batch.Queue(sql, string(r.Bucket), []byte(r.Key)).QueryRow(func(row pgx.Row) error {
		var it store.Item
		err := row.Scan(&it.Value, &it.ETag)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err == nil {
			found(it)
		}
		return err
	})
}
