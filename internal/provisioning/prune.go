package provisioning

import (
	"context"
	"time"
)

// PruneExpired deletes the register operations whose retention ended by
// now and returns how many it deleted (operations.Book.PruneExpired): the
// pipeline's sweep.Pruner.
func (s *Service) PruneExpired(ctx context.Context, now time.Time) (deleted int, err error) {
	return s.book.PruneExpired(ctx, now)
}
