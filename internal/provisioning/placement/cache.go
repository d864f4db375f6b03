package placement

import (
	"context"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/store"
)

// DefaultReadCacheTTL is how long the registration path keeps the linked
// hubs and the instance settings it read (Config.ReadCacheTTL): a write
// through this replica's service API drops them at once
// (store.Generation); a write through another replica is seen within the
// TTL. Until then a registration may be allocated by the previous hub list
// or default policy, as if it had run just before the change.
const DefaultReadCacheTTL = 2 * time.Second

// readCache keeps one value read from a bucket for at most ttl, and not
// past a write of that bucket by this process. One value: bounded.
type readCache[T any] struct {
	bucket store.Bucket
	ttl    time.Duration
	now    func() time.Time

	mu  sync.Mutex
	v   T
	at  time.Time
	gen int64
	ok  bool
}

// get returns the kept value, or loads a fresh one. Concurrent misses load
// once each; the last to finish is kept.
func (c *readCache[T]) get(ctx context.Context, load func(context.Context) (T, error)) (T, error) {
	if c.ttl <= 0 {
		return load(ctx)
	}
	gen := store.Generation(c.bucket)
	now := c.now()
	c.mu.Lock()
	if c.ok && c.gen == gen && now.Sub(c.at) < c.ttl && !now.Before(c.at) {
		v := c.v
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	v, err := load(ctx)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	c.v, c.at, c.gen, c.ok = v, now, gen, true
	c.mu.Unlock()
	return v, nil
}
