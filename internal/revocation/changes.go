package revocation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
)

// Change markers. Every transaction that revokes a certificate inserts one
// key of its own, a random one, into BucketRevocationChanges; the CRL
// publisher signs a new CRL while any marker is left and deletes the
// markers it saw before listing the revoked certificates. So a revoking
// transaction never reads or rewrites a row that every other one also
// writes: a thousand concurrent deletes insert a thousand distinct keys
// instead of all incrementing one counter, which on PostgreSQL made every
// one of them conflict with every other (the revocation state used to hold
// that counter).

// maxMarkers bounds the markers one CRL publication reads and deletes; the
// rest stay for the next one, which follows at once (the CRL is stale while
// any is left).
const maxMarkers = 5000

// markChanged records, in tx, that the revoked set changed.
func markChanged(ctx context.Context, tx store.Tx) error {
	var rb [16]byte
	_, _ = rand.Read(rb[:]) // never fails (crypto/rand, Go 1.24+)
	if _, err := tx.Put(ctx, BucketRevocationChanges, hex.EncodeToString(rb[:]), nil, store.Condition{IfNoneMatch: true}); err != nil {
		return fmt.Errorf("revocation: mark the revoked set changed: %w", err)
	}
	return nil
}

// markers returns up to limit change markers (their keys).
func markers(ctx context.Context, tx store.Tx, limit int) ([]string, error) {
	items, err := tx.Scan(ctx, BucketRevocationChanges, "", "", limit)
	if err != nil {
		return nil, fmt.Errorf("revocation: read change markers: %w", err)
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys, nil
}

// clearMarkers deletes the markers a publication saw; one deleted meanwhile
// (by another replica's publication) is no error.
func clearMarkers(ctx context.Context, tx store.Tx, keys []string) error {
	for _, k := range keys {
		if err := tx.Delete(ctx, BucketRevocationChanges, k, store.Condition{}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("revocation: clear change marker: %w", err)
		}
	}
	return nil
}
