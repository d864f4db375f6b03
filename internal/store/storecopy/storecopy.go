// Package storecopy copies everything one store.Backend holds into another
// (bbolt to PostgreSQL and back, for `zdps migrate`) and verifies the copy.
//
// It copies every bucket the source lists, key by key, values and ETags
// unchanged, so that clients' If-Match ETags and continuation tokens stay
// valid. Both backends must offer the optional capabilities store.BucketLister
// (source) and store.RawWriter (destination). Writes go in transactions of
// Config.BatchSize keys, never one transaction for everything.
//
// The source must not change during the copy (stop every zdps using it);
// Verify then proves the destination holds the same: per bucket, the number
// of keys and a SHA-256 over every key, value and ETag in byte order.
package storecopy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"

	"github.com/zdps/zdps/internal/store"
)

// Errors of this package.
var (
	// ErrUnsupported: a backend lacks a capability the copy needs.
	ErrUnsupported = errors.New("storecopy: backend cannot be copied")
	// ErrNotEmpty: the destination already holds data.
	ErrNotEmpty = errors.New("storecopy: destination is not empty")
	// ErrMismatch: after the copy, a bucket differs between source and
	// destination.
	ErrMismatch = errors.New("storecopy: destination differs from source")
)

// DefaultBatchSize is the number of keys per destination transaction.
const DefaultBatchSize = 1000

// Config of Copy.
type Config struct {
	// BatchSize is the number of keys read and written per transaction;
	// zero means DefaultBatchSize.
	BatchSize int
	// Progress, if set, is called after each batch with the bucket and
	// the number of keys it added.
	Progress func(b store.Bucket, n int)
}

// BucketSummary describes one bucket's content.
type BucketSummary struct {
	Bucket store.Bucket
	Keys   int
	// Digest is SHA-256 over every (key, value, ETag), length-prefixed,
	// in key order.
	Digest [sha256.Size]byte
}

// Summarize lists every bucket of b with its key count and digest.
func Summarize(ctx context.Context, b store.Backend, batch int) ([]BucketSummary, error) {
	buckets, err := Buckets(ctx, b)
	if err != nil {
		return nil, err
	}
	out := make([]BucketSummary, 0, len(buckets))
	for _, bk := range buckets {
		s := BucketSummary{Bucket: bk}
		h := sha256.New()
		err := pages(ctx, b, bk, batch, func(items []store.Item) error {
			for _, it := range items {
				s.Keys++
				writeField(h, []byte(it.Key))
				writeField(h, it.Value)
				writeField(h, []byte(it.ETag))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		h.Sum(s.Digest[:0])
		out = append(out, s)
	}
	return out, nil
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// Buckets lists b's non-empty buckets.
func Buckets(ctx context.Context, b store.Backend) ([]store.Bucket, error) {
	var out []store.Bucket
	err := b.View(ctx, func(tx store.Tx) error {
		l, ok := tx.(store.BucketLister)
		if !ok {
			return fmt.Errorf("%w: it cannot list its buckets", ErrUnsupported)
		}
		var err error
		out, err = l.Buckets(ctx)
		return err
	})
	return out, err
}

// pages calls fn with successive pages of bucket bk, each read in its own
// transaction.
func pages(ctx context.Context, b store.Backend, bk store.Bucket, batch int, fn func([]store.Item) error) error {
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	after := ""
	for {
		var items []store.Item
		err := b.View(ctx, func(tx store.Tx) error {
			var err error
			items, err = tx.Scan(ctx, bk, "", after, batch)
			return err
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", bk, err)
		}
		if len(items) == 0 {
			return nil
		}
		if err := fn(items); err != nil {
			return err
		}
		after = items[len(items)-1].Key
		if len(items) < batch {
			return nil
		}
	}
}

// Copy writes every key of src into dst, which must be empty. It returns
// the number of keys copied.
func Copy(ctx context.Context, dst, src store.Backend, cfg Config) (int, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	existing, err := Buckets(ctx, dst)
	if err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	if len(existing) > 0 {
		return 0, fmt.Errorf("%w: it has buckets %v", ErrNotEmpty, existing)
	}
	buckets, err := Buckets(ctx, src)
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	total := 0
	for _, bk := range buckets {
		err := pages(ctx, src, bk, cfg.BatchSize, func(items []store.Item) error {
			err := dst.Update(ctx, func(tx store.Tx) error {
				w, ok := tx.(store.RawWriter)
				if !ok {
					return fmt.Errorf("%w: destination cannot keep ETags", ErrUnsupported)
				}
				for _, it := range items {
					if err := w.PutRaw(ctx, bk, it.Key, it.Value, it.ETag); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("write %s: %w", bk, err)
			}
			total += len(items)
			if cfg.Progress != nil {
				cfg.Progress(bk, len(items))
			}
			return nil
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Comparison is one bucket on both sides.
type Comparison struct {
	Bucket               store.Bucket
	SourceKeys, DestKeys int
	SameContent          bool
}

// OK reports whether the bucket was copied exactly.
func (c Comparison) OK() bool { return c.SourceKeys == c.DestKeys && c.SameContent }

// Compare lines up two summaries bucket by bucket (a bucket on one side
// only counts zero keys on the other) and returns an error wrapping
// ErrMismatch when any bucket differs.
func Compare(src, dst []BucketSummary) ([]Comparison, error) {
	type pair struct{ s, d *BucketSummary }
	byName := map[store.Bucket]*pair{}
	for i := range src {
		byName[src[i].Bucket] = &pair{s: &src[i]}
	}
	for i := range dst {
		p := byName[dst[i].Bucket]
		if p == nil {
			p = &pair{}
			byName[dst[i].Bucket] = p
		}
		p.d = &dst[i]
	}
	var out []Comparison
	var bad []store.Bucket
	for name, p := range byName {
		c := Comparison{Bucket: name}
		if p.s != nil {
			c.SourceKeys = p.s.Keys
		}
		if p.d != nil {
			c.DestKeys = p.d.Keys
		}
		c.SameContent = p.s != nil && p.d != nil && p.s.Digest == p.d.Digest
		if !c.OK() {
			bad = append(bad, name)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Comparison) int {
		switch {
		case a.Bucket < b.Bucket:
			return -1
		case a.Bucket > b.Bucket:
			return 1
		}
		return 0
	})
	if len(bad) > 0 {
		slices.Sort(bad)
		return out, fmt.Errorf("%w: buckets %v", ErrMismatch, bad)
	}
	return out, nil
}
