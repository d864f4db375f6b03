package store

import (
	"context"

	"github.com/zdps/zdps/pkg/enrollment"
)

// CountBy counts the documents whose index value equals value, reading only
// the index (no document is decoded). It is how the allocation step learns
// how many devices a hub holds.
func (c *Collection[T]) CountBy(ctx context.Context, index Bucket, value string) (int, error) {
	var n int
	err := ViewOne(ctx, c.backend, func(tx Tx) error {
		var err error
		n, err = c.In(tx).CountBy(ctx, index, value)
		return err
	})
	return n, err
}

// CountBy counts inside the transaction; see Collection.CountBy.
func (t TxCollection[T]) CountBy(ctx context.Context, index Bucket, value string) (int, error) {
	if value == "" {
		return 0, nil
	}
	items, err := t.tx.Scan(ctx, index, enrollment.Key(value)+indexSep, "", 0)
	if err != nil {
		return 0, err
	}
	return len(items), nil
}
