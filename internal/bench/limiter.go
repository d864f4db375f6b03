package bench

import (
	"context"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/ctxtime"
)

// Limiter paces starts at a fixed rate: the n-th call to Wait returns at
// start + n/rate (n from 0), so the long-run rate is exact and a slow
// start does not lose slots; a caller that arrives after its slot returns
// at once. It is safe for concurrent use.
type Limiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
}

// NewLimiter returns a limiter of rate starts per second (rate > 0). now
// and sleep default to the real clock when nil.
func NewLimiter(rate float64, now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) *Limiter {
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = ctxtime.Sleep
	}
	return &Limiter{interval: time.Duration(float64(time.Second) / rate), now: now, sleep: sleep}
}

// Wait blocks until the caller's slot, or until ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	now := l.now()
	if l.next.IsZero() {
		l.next = now
	}
	slot := l.next
	l.next = l.next.Add(l.interval)
	l.mu.Unlock()
	if d := slot.Sub(now); d > 0 {
		return l.sleep(ctx, d)
	}
	return ctx.Err()
}
