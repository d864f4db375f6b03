package store

import (
	"context"
	"errors"
)

// Sentinel errors of every backend and of the typed layer.
var (
	// ErrNotFound: no value under the key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a create found the key already taken.
	ErrConflict = errors.New("store: already exists")
	// ErrPreconditionFailed: an If-Match ETag did not match the stored one.
	ErrPreconditionFailed = errors.New("store: precondition failed")
	// ErrInvalidContinuation: a continuation token was not one we issued.
	ErrInvalidContinuation = errors.New("store: invalid continuation token")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("store: closed")
	// ErrBusy: a transaction could not commit within the backend's retry
	// budget because concurrent ones kept conflicting with it. It is
	// transient: callers answer 503 with Retry-After, never a server fault.
	ErrBusy = errors.New("store: busy")
)

// Bucket names a keyspace (a bbolt bucket, a PostgreSQL key prefix). Keys
// are non-empty, at most 1 KiB, and contain no NUL byte.
type Bucket string

// Condition guards a write.
type Condition struct {
	// IfMatch: "" writes unconditionally; "*" requires an existing value;
	// anything else requires the stored ETag to equal it.
	IfMatch string
	// IfNoneMatch requires that no value exists (a create).
	IfNoneMatch bool
}

// Item is one stored value.
type Item struct {
	Key   string
	Value []byte
	ETag  string
}

// Tx is one transaction. Reads see the transaction's own writes.
type Tx interface {
	// Get returns ErrNotFound when the key is absent.
	Get(ctx context.Context, b Bucket, key string) (Item, error)
	// Put stores value under key if cond holds and returns the new ETag,
	// which the backend generates (random, never reused for the key).
	Put(ctx context.Context, b Bucket, key string, value []byte, cond Condition) (string, error)
	// Delete removes key if cond holds; ErrNotFound when absent.
	Delete(ctx context.Context, b Bucket, key string, cond Condition) error
	// Scan returns up to limit items whose key starts with prefix and sorts
	// strictly after after (byte order), ascending. limit <= 0 means no limit.
	Scan(ctx context.Context, b Bucket, prefix, after string, limit int) ([]Item, error)
}

// Backend is a storage engine.
type Backend interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction and makes it durable
	// before returning. Transactions are serializable: the typed layer
	// reads old documents to maintain indexes and ETags, so a backend with
	// weaker isolation must retry (PostgreSQL: SERIALIZABLE and retry on
	// serialization failure), unless ctx asks for a conditional
	// transaction (Conditional, conditional.go), whose weaker guarantee
	// its caller has checked. fn's error rolls everything back. A backend may
	// batch concurrent Updates and run fn more than once, so fn must
	// depend only on what it reads through tx.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the engine.
	Close() error
}
