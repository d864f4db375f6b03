package store

import "context"

// OneShotReader is implemented by a backend that can run a read of one
// statement outside any transaction, more cheaply than View (PostgreSQL:
// without the BEGIN and COMMIT round trips). One statement sees one
// consistent state by itself, so nothing is lost.
type OneShotReader interface {
	// ViewOne runs fn, which must make at most one call on its Tx (a
	// Get or a Scan); a second fails.
	ViewOne(ctx context.Context, fn func(Tx) error) error
}

// ViewOne runs fn, which makes at most one call on its Tx, through the
// engine beneath b's wrappers when it is a OneShotReader, else through
// b.View. Wrappers (metrics, the audit recorder) only see writes and time
// transactions, so a single read may pass them by.
func ViewOne(ctx context.Context, b Backend, fn func(Tx) error) error {
	if o, ok := Unwrap(b).(OneShotReader); ok {
		return o.ViewOne(ctx, fn)
	}
	return b.View(ctx, fn)
}

// EachReader is implemented by a backend that can run several one-shot
// reads (ViewOne) at once, their statements in one round trip
// (PostgreSQL: one pipelined batch, no transaction). Each read still sees
// a state of its own, as that many ViewOne calls would.
type EachReader interface {
	// ViewEach runs every fn, each of which must make at most one call on
	// its Tx, concurrently, and returns the first error in fns' order.
	ViewEach(ctx context.Context, fns ...func(Tx) error) error
}

// ViewEach runs every fn as ViewOne would, in one round trip when the
// engine beneath b's wrappers is an EachReader, else one after the other.
// It runs them all whatever one returns, and returns the first error in
// fns' order. The fns may run concurrently: each must touch only its own
// variables.
func ViewEach(ctx context.Context, b Backend, fns ...func(Tx) error) error {
	if e, ok := Unwrap(b).(EachReader); ok && len(fns) > 1 {
		return e.ViewEach(ctx, fns...)
	}
	var first error
	for _, fn := range fns {
		if err := ViewOne(ctx, b, fn); err != nil && first == nil {
			first = err
		}
	}
	return first
}
