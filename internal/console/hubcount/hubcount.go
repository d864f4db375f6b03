package hubcount

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// TTL is how long a hub's device count is shown before it is counted
// again. A stale count is shown while a background run counts again;
// only a hub never counted is counted during the view (the console's Warm
// counts every hub at start).
const TTL = 15 * time.Second

// Counter counts the registration records assigned to a hub
// (store.Store's Registrations.CountBy on the hub index).
type Counter func(ctx context.Context, hub string) (int, error)

// Cache caches device counts by hub. Count, Log and Now are required.
type Cache struct {
	Count Counter
	Log   *slog.Logger
	Now   func() time.Time

	mu       sync.Mutex
	m        map[string]count
	counting map[string]bool
}

type count struct {
	n  int
	at time.Time
}

// Fill sets the DeviceCount of each hub of hs.
func (hc *Cache) Fill(ctx context.Context, hs []*enrollment.Hub) error {
	now := hc.Now()
	for _, h := range hs {
		k := enrollment.Key(h.Name)
		hc.mu.Lock()
		if hc.m == nil {
			hc.m, hc.counting = map[string]count{}, map[string]bool{}
		}
		e, ok := hc.m[k]
		stale := ok && (now.Sub(e.at) >= TTL || now.Before(e.at))
		if stale && !hc.counting[k] {
			hc.counting[k] = true
			go hc.recount(h.Name)
		}
		hc.mu.Unlock()
		if !ok {
			n, err := hc.Count(ctx, h.Name)
			if err != nil {
				return err
			}
			e = count{n: n, at: now}
			hc.mu.Lock()
			hc.m[k] = e
			hc.mu.Unlock()
		}
		n := e.n
		h.DeviceCount = &n
	}
	return nil
}

func (hc *Cache) recount(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := hc.Count(ctx, name)
	hc.mu.Lock()
	defer hc.mu.Unlock()
	delete(hc.counting, enrollment.Key(name))
	if err != nil {
		hc.Log.Warn("console: count a hub's devices", "hub", name, "error", err)
		return
	}
	hc.m[enrollment.Key(name)] = count{n: n, at: hc.Now()}
}
