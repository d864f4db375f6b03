package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/zdps/zdps/internal/store"
)

// One round trip for several one-shot reads (store.ViewEach). Each fn runs
// on a goroutine of its own with a one-shot Tx whose single statement,
// instead of going out alone, is handed to ViewEach; once every fn has
// handed its statement over or returned without one, the statements go out
// as one batch on one connection, and each fn goes on with its answer. A
// batch runs outside any explicit transaction, so each statement takes its
// own snapshot at READ COMMITTED, as that many ViewOne calls would.

// oneShotRead is a statement handed over by a fn of ViewEach.
type oneShotRead struct {
	queue func(*pgx.Batch)
	done  chan error
}

// ViewEach implements store.EachReader.
func (b *Backend) ViewEach(ctx context.Context, fns ...func(store.Tx) error) error {
	t, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer t.release(ctx)
	reads := make(chan oneShotRead)
	returned := make(chan struct{}, len(fns))
	errs := make([]error, len(fns))
	for i, fn := range fns {
		sub := &tx{b: b, conn: t.conn, oneShot: true, handOver: reads}
		go func() {
			defer func() { returned <- struct{}{} }()
			errs[i] = fn(sub)
		}()
	}
	// A fn that handed its statement over waits for the answer; every
	// other has returned or will without sending anything.
	var batch []oneShotRead
	left := len(fns) // fns that have not returned
	for len(batch) < left {
		select {
		case r := <-reads:
			batch = append(batch, r)
		case <-returned:
			left--
		}
	}
	if len(batch) > 0 {
		q := &pgx.Batch{}
		for _, r := range batch {
			r.queue(q)
		}
		qctx, cancel := context.WithTimeout(ctx, b.queryTimeout)
		err := t.conn.SendBatch(qctx, q).Close()
		cancel()
		for _, r := range batch {
			r.done <- err
		}
	}
	for ; left > 0; left-- {
		<-returned
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
