package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/store"
)

// DefaultRetention is how long feed entries, the IDs of ingested audit
// events and the answers to conflicting pushes are kept.
const DefaultRetention = 30 * 24 * time.Hour

// pruneBatch bounds the deletions of one transaction.
const pruneBatch = 500

// stamp is when a remembered answer was stored.
type stamp struct {
	At time.Time `json:"at"`
}

// Pruner deletes what the gateways no longer need: feed entries older
// than the retention (a gateway whose cursor is older must take a new
// snapshot: Pull answers ErrCursor), and the remembered audit event IDs
// and conflict answers older than it (a gateway re-pushes only what it
// pushed last, within minutes). It is an internal/sweep pruner.
type Pruner struct {
	b    store.Backend
	keep time.Duration
}

// NewPruner prunes on b, keeping keep (DefaultRetention when 0).
func NewPruner(b store.Backend, keep time.Duration) (*Pruner, error) {
	if b == nil {
		return nil, errors.New("sites: pruner: Backend is required")
	}
	if keep < 0 {
		return nil, fmt.Errorf("sites: pruner: negative retention %v", keep)
	}
	if keep == 0 {
		keep = DefaultRetention
	}
	return &Pruner{b: b, keep: keep}, nil
}

// PruneExpired deletes, pruneBatch per transaction, everything older
// than now minus the retention, and returns how much. Safe on several
// replicas at once.
func (p *Pruner) PruneExpired(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-p.keep)
	var sites []string
	if err := p.b.View(ctx, func(tx store.Tx) error {
		items, err := tx.Scan(ctx, BucketFeedHead, "", "", 0)
		for _, it := range items {
			sites = append(sites, it.Key)
		}
		return err
	}); err != nil {
		return 0, err
	}
	total := 0
	for _, site := range sites {
		for {
			n, err := p.pruneFeed(ctx, site, cutoff)
			total += n
			if err != nil {
				return total, fmt.Errorf("sites: prune the feed of %q: %w", site, err)
			}
			if n < pruneBatch {
				break
			}
		}
	}
	for _, b := range []store.Bucket{BucketAuditSeen, BucketConflicts} {
		after := ""
		for {
			n, last, err := p.pruneStamped(ctx, b, after, cutoff)
			total += n
			if err != nil {
				return total, fmt.Errorf("sites: prune %s: %w", b, err)
			}
			if last == "" {
				break
			}
			after = last
		}
	}
	return total, nil
}

// pruneFeed deletes up to pruneBatch of site's oldest entries appended
// before cutoff and moves the head's Pruned past them.
func (p *Pruner) pruneFeed(ctx context.Context, site string, cutoff time.Time) (int, error) {
	n := 0
	err := p.b.Update(ctx, func(tx store.Tx) error {
		n = 0
		items, err := tx.Scan(ctx, BucketFeed, site+"/", "", pruneBatch)
		if err != nil {
			return err
		}
		var last uint64
		for _, it := range items {
			var e entry
			if err := json.Unmarshal(it.Value, &e); err != nil {
				return err
			}
			if !e.At.Before(cutoff) {
				break
			}
			if last, err = seqOf(it.Key); err != nil {
				return err
			}
			if err := tx.Delete(ctx, BucketFeed, it.Key, store.Condition{}); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		h, err := headOf(ctx, tx, site)
		if err != nil {
			return err
		}
		h.Pruned = max(h.Pruned, last)
		b, _ := json.Marshal(h)
		_, err = tx.Put(ctx, BucketFeedHead, site, b, store.Condition{})
		return err
	})
	return n, err
}

// pruneStamped deletes the stamped values of b before cutoff among the
// next pruneBatch keys after after; last is the last key read ("" at the
// end).
func (p *Pruner) pruneStamped(ctx context.Context, b store.Bucket, after string, cutoff time.Time) (n int, last string, err error) {
	err = p.b.Update(ctx, func(tx store.Tx) error {
		n, last = 0, ""
		items, err := tx.Scan(ctx, b, "", after, pruneBatch)
		if err != nil {
			return err
		}
		for _, it := range items {
			var s stamp
			if err := json.Unmarshal(it.Value, &s); err != nil {
				return err
			}
			if s.At.Before(cutoff) {
				if err := tx.Delete(ctx, b, it.Key, store.Condition{}); err != nil {
					return err
				}
				n++
			}
		}
		if len(items) == pruneBatch {
			last = items[len(items)-1].Key
		}
		return nil
	})
	return n, last, err
}
