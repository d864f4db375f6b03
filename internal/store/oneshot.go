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
