package store

import "context"

// Conditional transactions. Update is serializable; on PostgreSQL that is
// SERIALIZABLE, whose predicate locks make concurrent transactions that
// read absent keys or scan ranges near each other abort one another even
// when they touch different documents. A hot transaction whose author has
// checked what it relies on may ask for a weaker, cheaper guarantee with
// Conditional(ctx); backends that run one writer at a time (bbolt, memory)
// ignore the request, because they give more.
//
// Under Conditional, an Update guarantees:
//
//   - every statement sees what was committed before it (READ COMMITTED on
//     PostgreSQL), and the transaction's own writes;
//   - a key the transaction read and then writes or deletes is written only
//     if it is still as the read found it (the backend adds that
//     compare-and-swap to the write, whatever Condition the caller gave,
//     and runs fn again when it fails): a read-modify-write of one key never
//     loses a concurrent write, as under serializable transactions;
//   - a key read with Lock (GetLocked, TxCollection.Locked) stays as read
//     until the transaction ends: shared locks keep writers out, an
//     exclusive lock also keeps other lockers out.
//
// It does not guarantee that a key read as absent stays absent, or that a
// scanned range stays unchanged, unless the transaction holds a lock on a
// key that every writer of them also writes or locks. The caller says, where
// it asks for Conditional, which lock stands for which absent key or range.
type conditionalKey struct{}

// Conditional marks the Updates run with the returned context as
// conditional transactions (see above).
func Conditional(ctx context.Context) context.Context {
	return context.WithValue(ctx, conditionalKey{}, true)
}

// IsConditional reports whether ctx asks for conditional transactions.
func IsConditional(ctx context.Context) bool {
	v, _ := ctx.Value(conditionalKey{}).(bool)
	return v
}

// Locker is implemented by a Tx that can hold a key until it ends
// (PostgreSQL: SELECT ... FOR SHARE / FOR UPDATE). A backend with one
// writer at a time need not implement it: every key is stable there.
type Locker interface {
	// Lock reads key like Get and locks it, shared or exclusive, until the
	// transaction ends. A read-only transaction only reads.
	Lock(ctx context.Context, b Bucket, key string, exclusive bool) (Item, error)
}

// GetLocked is Lock when tx implements Locker, else Get.
func GetLocked(ctx context.Context, tx Tx, b Bucket, key string, exclusive bool) (Item, error) {
	if l, ok := tx.(Locker); ok {
		return l.Lock(ctx, b, key, exclusive)
	}
	return tx.Get(ctx, b, key)
}

// Read names a key to Prefetch, and whether to lock it (Lock, exclusive).
type Read struct {
	Bucket    Bucket
	Key       string
	Lock      bool
	Exclusive bool
}

// Prefetcher is implemented by a Tx that can read several keys in one
// round trip and answer later Gets (and Locks) of them from what it read
// (PostgreSQL, in a conditional transaction).
type Prefetcher interface {
	// Prefetch reads (and locks) the keys in order, as that many Gets
	// and Locks would.
	Prefetch(ctx context.Context, reads []Read) error
}

// Prefetch reads keys through tx's Prefetcher when it has one; otherwise
// it does nothing, and the Gets that follow read as usual.
func Prefetch(ctx context.Context, tx Tx, reads ...Read) error {
	if p, ok := tx.(Prefetcher); ok {
		return p.Prefetch(ctx, reads)
	}
	return nil
}
