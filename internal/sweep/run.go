package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// Batch is how many records one prune transaction deletes at most: the
// batch the owners pass to Expired.
const Batch = 500

// Pruner deletes stored records whose retention ended by now and reports
// how many it deleted. It must be safe to run on several replicas at once.
type Pruner interface {
	PruneExpired(ctx context.Context, now time.Time) (deleted int, err error)
}

// DefaultInterval is how often `zdps serve` prunes by default.
const DefaultInterval = time.Hour

// Run runs every pruner once at start and then every interval until
// ctx ends, and returns ctx's error. pruners are named by what they delete
// (the log says "records"); a failed prune is logged and tried again at the
// next tick. Logs carry counts only.
func Run(ctx context.Context, log *slog.Logger, interval time.Duration, now func() time.Time, pruners map[string]Pruner) error {
	if interval <= 0 {
		return fmt.Errorf("sweep: prune interval %v must be positive", interval)
	}
	if now == nil {
		now = time.Now
	}
	names := slices.Sorted(maps.Keys(pruners))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, name := range names {
			start := now()
			n, err := pruners[name].PruneExpired(ctx, start)
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case err != nil:
				log.ErrorContext(ctx, "prune failed; retrying later", "records", name, "count", n, "error", err)
			case n > 0:
				log.InfoContext(ctx, "expired records pruned", "records", name, "count", n, "duration", now().Sub(start))
			default:
				log.DebugContext(ctx, "no expired records to prune", "records", name)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
