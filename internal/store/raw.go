package store

import (
	"context"
	"io"
)

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

// Snapshotter is implemented by a Backend that can write a consistent copy
// of itself as one file while it keeps serving (bbolt). PostgreSQL has its
// own tools (pg_dump) and memory has nothing worth keeping, so neither
// implements it; the backup route checks for it with a type assertion.
type Snapshotter interface {
	// Snapshot opens a read-only view of the whole store as it is now.
	// The caller must Close it; while it is open, writes continue.
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Snapshot is one consistent view of a store, as a file image.
type Snapshot interface {
	// Size is the exact number of bytes WriteTo writes when it succeeds,
	// known before the first byte (a Content-Length, a progress bar).
	Size() int64
	// WriteTo writes the image to w.
	WriteTo(w io.Writer) (int64, error)
	// Close releases the view.
	Close() error
}

// Unwrap returns the backend beneath wrappers (metrics timing, the audit
// trail's change recorder) that implement Unwrap() Backend, so that
// optional capabilities such as Snapshotter are found on the engine.
func Unwrap(b Backend) Backend {
	for {
		u, ok := b.(interface{ Unwrap() Backend })
		if !ok {
			return b
		}
		b = u.Unwrap()
	}
}
