package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
)

// Expired walks bucket in key order, batch keys at a time, and deletes the
// expired ones. It returns how many del deleted.
//
// Each page is read in a read-only transaction and filtered with expired,
// which sees the value as scanned and only preselects; the candidates of a
// page are then handed to del in one read-write transaction. del must read
// the record again inside tx, decide on what it reads there, and report
// whether it deleted it: between the two transactions another replica may
// have deleted the record (del reports false) or a writer may have
// replaced it. del may run more than once per transaction (a backend may
// retry or batch Updates), so it must depend only on what it reads
// through tx.
//
// A walk needs no state of its own: it starts from the first key every
// time, so one cut short (shutdown, an error) is simply done again by the
// next. Several walks over one bucket at once are safe; they only
// duplicate reads.
func Expired(ctx context.Context, b store.Backend, bucket store.Bucket, batch int,
	expired func(store.Item) bool,
	del func(ctx context.Context, tx store.Tx, key string) (bool, error),
) (deleted int, err error) {
	if batch <= 0 {
		return 0, fmt.Errorf("sweep: batch %d must be positive", batch)
	}
	after := ""
	for {
		var (
			candidates []string
			scanned    int
			last       string
		)
		err := b.View(ctx, func(tx store.Tx) error {
			items, err := tx.Scan(ctx, bucket, "", after, batch)
			if err != nil {
				return err
			}
			candidates, scanned, last = candidates[:0], len(items), ""
			for _, it := range items {
				last = it.Key
				if expired(it) {
					candidates = append(candidates, it.Key)
				}
			}
			return nil
		})
		if err != nil {
			return deleted, fmt.Errorf("sweep %s: scan: %w", bucket, err)
		}
		if len(candidates) > 0 {
			var n int
			err := b.Update(ctx, func(tx store.Tx) error {
				n = 0
				for _, key := range candidates {
					ok, err := del(ctx, tx, key)
					if err != nil {
						return err
					}
					if ok {
						n++
					}
				}
				return nil
			})
			if err != nil {
				return deleted, fmt.Errorf("sweep %s: delete: %w", bucket, err)
			}
			deleted += n
		}
		if scanned < batch {
			return deleted, nil
		}
		after = last
	}
}

// Documents is Expired over the bucket of a typed collection: expired
// decides on the document as scanned (one that does not decode is left
// alone, and to the reads, which report it) and again on the one read
// inside the deleting transaction, which deletes it under its ETag through
// the collection, so that its index entries go with it. also, when set,
// runs in that transaction after each delete. A document another replica
// deleted first, or that no longer expires, is skipped.
func Documents[E any, P interface {
	*E
	store.Document
}](ctx context.Context, b store.Backend, c *store.Collection[P], bucket store.Bucket, batch int,
	expired func(P) bool, also func(ctx context.Context, tx store.Tx, v P) error,
) (deleted int, err error) {
	return Expired(ctx, b, bucket, batch,
		func(it store.Item) bool {
			var v E
			return json.Unmarshal(it.Value, &v) == nil && expired(&v)
		},
		func(ctx context.Context, tx store.Tx, key string) (bool, error) {
			col := c.In(tx)
			v, err := col.Get(ctx, key)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return false, nil // another replica pruned it
			case err != nil:
				return false, err
			case !expired(v):
				return false, nil // replaced meanwhile
			}
			if err := col.Delete(ctx, key, store.Condition{IfMatch: v.Version().ETag}); err != nil {
				return false, err
			}
			if also == nil {
				return true, nil
			}
			return true, also(ctx, tx, v)
		})
}
