package store

import "context"

// Optional capabilities of a Tx, for tools that copy a whole backend into
// another (zdps migrate). The service itself never needs them; a caller
// checks for them with a type assertion on the Tx it is given.

// BucketLister lists the buckets that hold at least one key, in byte order.
type BucketLister interface {
	Buckets(ctx context.Context) ([]Bucket, error)
}

// RawWriter stores value under key with the given ETag, unconditionally, so
// that a copy keeps the ETags that clients hold for If-Match. Only a writable
// Tx implements it usefully; etag must be non-empty and at most 255 bytes.
type RawWriter interface {
	PutRaw(ctx context.Context, b Bucket, key string, value []byte, etag string) error
}
