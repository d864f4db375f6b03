package detect

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/store"
)

// BucketBlockedSources holds the source networks a throttle-source
// response refuses, with their expiry, shared by every replica.
const BucketBlockedSources store.Bucket = "blocked-sources"

// Blocklist stores throttled source networks and answers, from a cache
// refreshed every RefreshEvery, whether an address is among them: the
// registration path reads no store for it.
type Blocklist struct {
	Backend      store.Backend
	RefreshEvery time.Duration
	Now          func() time.Time

	mu      sync.Mutex
	loaded  time.Time
	entries map[string]time.Time
}

type blocked struct {
	Until time.Time `json:"until"`
}

func (b *Blocklist) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// ThrottleSource blocks a network (Network's form) for d.
func (b *Blocklist) ThrottleSource(ctx context.Context, network string, d time.Duration) error {
	raw, _ := json.Marshal(&blocked{Until: b.now().Add(d).UTC()})
	err := b.Backend.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, BucketBlockedSources, network, raw, store.Condition{})
		return err
	})
	b.mu.Lock()
	b.loaded = time.Time{} // reload at the next check
	b.mu.Unlock()
	return err
}

// Blocked reports whether addr's network is blocked, and for how long.
func (b *Blocklist) Blocked(ctx context.Context, addr string) (time.Duration, bool) {
	n := Network(addr)
	if n == "" {
		return 0, false
	}
	now := b.now()
	every := b.RefreshEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	b.mu.Lock()
	stale := now.Sub(b.loaded) >= every
	if stale {
		b.loaded = now // one caller reloads; the others use what is there
	}
	b.mu.Unlock()
	if stale {
		// Read outside the lock: registrations do not wait for the store.
		entries := map[string]time.Time{}
		err := b.Backend.View(ctx, func(tx store.Tx) error {
			items, err := tx.Scan(ctx, BucketBlockedSources, "", "", 10_000)
			for _, it := range items {
				var v blocked
				if json.Unmarshal(it.Value, &v) == nil && v.Until.After(now) {
					entries[it.Key] = v.Until
				}
			}
			return err
		})
		b.mu.Lock()
		if err == nil {
			b.entries = entries
		} else {
			b.loaded = time.Time{} // try again at the next check
		}
		b.mu.Unlock()
	}
	b.mu.Lock()
	until, ok := b.entries[n]
	b.mu.Unlock()
	if !ok || !until.After(now) {
		return 0, false
	}
	return until.Sub(now), true
}
