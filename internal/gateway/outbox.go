package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
)

// Buckets of this package.
const (
	// BucketOutbox holds the records to push: key the record's store key,
	// value outboxEntry.
	BucketOutbox store.Bucket = "gateway-outbox"
	// BucketState holds the sync cursors: keys "feed", "audit".
	BucketState store.Bucket = "gateway-state"
)

// outboxEntry is the ETag of the record version to push.
type outboxEntry struct {
	ETag string `json:"etag"`
}

// Outbox wraps a backend so that every write of a registration record
// enters it into the outbox, and every deletion takes it out, in the same
// transaction: the pipeline, renewals and any later writer feed the push
// without knowing it.
func Outbox(b store.Backend) store.Backend { return &outbox{Backend: b} }

type outbox struct{ store.Backend }

// Unwrap is the wrapped backend, for its optional capabilities.
func (o *outbox) Unwrap() store.Backend { return o.Backend }

func (o *outbox) Update(ctx context.Context, fn func(store.Tx) error) error {
	return o.Backend.Update(ctx, func(tx store.Tx) error { return fn(&outboxTx{Tx: tx}) })
}

type outboxTx struct{ store.Tx }

func (t *outboxTx) Put(ctx context.Context, b store.Bucket, key string, value []byte, cond store.Condition) (string, error) {
	etag, err := t.Tx.Put(ctx, b, key, value, cond)
	if err != nil || b != store.BucketRegistrations {
		return etag, err
	}
	e, _ := json.Marshal(outboxEntry{ETag: etag})
	if _, err := t.Tx.Put(ctx, BucketOutbox, key, e, store.Condition{}); err != nil {
		return "", fmt.Errorf("gateway: outbox: %w", err)
	}
	return etag, nil
}

func (t *outboxTx) Delete(ctx context.Context, b store.Bucket, key string, cond store.Condition) error {
	if err := t.Tx.Delete(ctx, b, key, cond); err != nil || b != store.BucketRegistrations {
		return err
	}
	// Deleted here (central deleted it, or it was never pushed): nothing
	// left to push.
	if err := t.Tx.Delete(ctx, BucketOutbox, key, store.Condition{}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("gateway: outbox: %w", err)
	}
	return nil
}

// Backlog counts the records waiting in the outbox.
func Backlog(ctx context.Context, b store.Backend) (int, error) {
	n := 0
	err := b.View(ctx, func(tx store.Tx) error {
		after := ""
		for {
			items, err := tx.Scan(ctx, BucketOutbox, "", after, 1000)
			if err != nil {
				return err
			}
			n += len(items)
			if len(items) < 1000 {
				return nil
			}
			after = items[len(items)-1].Key
		}
	})
	return n, err
}
