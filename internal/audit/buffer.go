package audit

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/store"
)

// Buffer records events that belong to no transaction of their own (a
// refused registration stores nothing, so it has no transaction to join):
// Add queues them without blocking and a flusher writes them in batches,
// one transaction per batch. The queue is bounded, so a flood of refused
// requests cannot grow memory or the store faster than it drains: what
// does not fit is counted, and the next batch records an audit.dropped
// event with the count, so the trail says that it is incomplete.
type Buffer struct {
	l     *Log
	mu    sync.Mutex
	queue []Event
	max   int
	// dropped since the last flush.
	dropped int
	wake    chan struct{}
	// OnRecord, when set, is called with the number of events written.
	OnRecord func(n int)
}

// Buffer bounds.
const (
	DefaultBufferSize = 10_000
	flushBatch        = 500
	// ActionDropped records how many events a full Buffer discarded.
	ActionDropped = "audit.dropped"
)

// NewBuffer queues at most size events for l (DefaultBufferSize when 0).
func (l *Log) NewBuffer(size int) *Buffer {
	if size <= 0 {
		size = DefaultBufferSize
	}
	return &Buffer{l: l, max: size, wake: make(chan struct{}, 1)}
}

// Add queues e; it never blocks.
func (b *Buffer) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = b.l.now()
	}
	b.mu.Lock()
	if len(b.queue) >= b.max {
		b.dropped++
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, e)
	full := len(b.queue) >= flushBatch
	b.mu.Unlock()
	if full {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Flush writes everything queued now, a batch per transaction.
func (b *Buffer) Flush(ctx context.Context) error {
	for {
		b.mu.Lock()
		n := min(len(b.queue), flushBatch)
		batch := append([]Event(nil), b.queue[:n]...)
		dropped := b.dropped
		b.mu.Unlock()
		if n == 0 && dropped == 0 {
			return nil
		}
		err := b.l.b.Update(ctx, func(tx store.Tx) error {
			for _, e := range batch {
				if err := b.l.Record(ctx, tx, e); err != nil {
					return err
				}
			}
			if dropped > 0 {
				return b.l.Record(ctx, tx, Event{Action: ActionDropped, Outcome: OutcomeFailed, Actor: "audit",
					Details: map[string]string{"dropped": strconv.Itoa(dropped), "reason": "buffer full"}})
			}
			return nil
		})
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.queue = b.queue[n:]
		b.dropped -= dropped
		b.mu.Unlock()
		if b.OnRecord != nil {
			b.OnRecord(n)
		}
	}
}

// Run flushes every interval (or when a batch is full) until ctx ends,
// then once more.
func (b *Buffer) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// The final flush outlives ctx, bounded.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := b.Flush(fctx); err != nil {
				b.l.log.Warn("audit: final flush failed", "error", err)
			}
			cancel()
			return
		case <-t.C:
		case <-b.wake:
		}
		if err := b.Flush(ctx); err != nil && ctx.Err() == nil {
			b.l.log.WarnContext(ctx, "audit: flush failed; retrying", "error", err)
		}
	}
}

// Trail is what the pipeline and the management use cases record
// through: events of a transaction with Record, events without one with
// Add (through the Buffer).
type Trail struct {
	Log    *Log
	Buffer *Buffer
}

// Record writes e in tx.
func (t *Trail) Record(ctx context.Context, tx store.Tx, e Event) error {
	return t.Log.Record(ctx, tx, e)
}

// Add queues e.
func (t *Trail) Add(e Event) { t.Buffer.Add(e) }
