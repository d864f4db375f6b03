package revocation

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ErrPending: a revocation job covering the device is stored; a
// registration must not store a certificate until it is done.
var ErrPending = errors.New("revocation: certificates of this enrollment are being revoked")

// Pending returns an error wrapping ErrPending when, in tx, a revocation
// job is stored for the registration or for any of the groups. The
// pipeline calls it in the transaction that would store a certificate, so
// that transaction and the one that stored the job are ordered (bbolt:
// one writer; PostgreSQL: SERIALIZABLE).
func Pending(ctx context.Context, tx store.Tx, registrationID string, groupIDs ...string) error {
	if err := pending(ctx, tx, BucketRevocationRegistrations, registrationID); err != nil {
		return err
	}
	for _, g := range groupIDs {
		if g == "" {
			continue
		}
		if err := pending(ctx, tx, BucketRevocationSweeps, g); err != nil {
			return err
		}
	}
	return nil
}

func pending(ctx context.Context, tx store.Tx, bucket store.Bucket, id string) error {
	_, err := tx.Get(ctx, bucket, enrollment.Key(id))
	switch {
	case err == nil:
		return ErrPending
	case errors.Is(err, store.ErrNotFound):
		return nil
	default:
		return fmt.Errorf("revocation: read revocation jobs: %w", err)
	}
}
