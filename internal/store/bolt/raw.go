package bolt

import (
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/zdps/zdps/internal/store"
)

var (
	_ store.BucketLister = (*tx)(nil)
	_ store.RawWriter    = (*tx)(nil)
)

// Buckets lists the buckets holding at least one key (bbolt keeps a bucket
// once created, even when its last key is deleted; those are left out).
func (t *tx) Buckets(ctx context.Context) ([]store.Bucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Bucket
	err := t.tx.ForEach(func(name []byte, bk *bbolt.Bucket) error {
		if k, _ := bk.Cursor().First(); k != nil {
			out = append(out, store.Bucket(name))
		}
		return nil
	})
	return out, err
}

// PutRaw stores value with the given ETag, unconditionally.
func (t *tx) PutRaw(ctx context.Context, b store.Bucket, key string, value []byte, etag string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !t.writable {
		return errReadOnly
	}
	if etag == "" || len(etag) > 255 {
		return errors.New("bolt: PutRaw: ETag must have 1 to 255 bytes")
	}
	bk, err := t.tx.CreateBucketIfNotExists([]byte(b))
	if err != nil {
		return fmt.Errorf("bolt: create bucket %s: %w", b, err)
	}
	if err := bk.Put([]byte(key), encode(etag, value)); err != nil {
		return fmt.Errorf("bolt: put %s/%q: %w", b, key, err)
	}
	return nil
}
