package bolt

import (
	"context"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/zdps/zdps/internal/store"
)

var _ store.FreeSpaceScrubber = (*Backend)(nil)

// scrubBucket holds the filler while ScrubFreeSpace runs; the leading NUL
// keeps it apart from every store.Bucket, which the typed layer names.
var scrubBucket = []byte("\x00zdps-scrub")

// scrubChunkPages bounds the pages one scrub transaction fills, so the
// filler held in memory until commit stays a few MB.
const scrubChunkPages = 1024

// ScrubFreeSpace overwrites the file's free pages. bbolt never writes a
// page it freed until it reuses it, so what a rewritten record held (a key
// in the clear, before it was sealed) stays readable in the file, and in a
// copy of it, until then. The filler takes every free page (bbolt writes
// whole pages, zero-padded) and is then deleted, so the pages are free
// again but hold only the filler. The file grows by a few pages at most.
// It returns the number of pages overwritten.
func (b *Backend) ScrubFreeSpace(ctx context.Context) (int, error) {
	ps := b.db.Info().PageSize
	// Four values fill a page (FillPercent 1): every allocation is one page,
	// which any free page can take, however fragmented the free list.
	filler := make([]byte, ps/4-64)
	total, seq := 0, uint64(0)
	free := freePages(b.db)
	// Rounds of at most scrubChunkPages take every page free now
	// (single-page allocations come from the free list while it has any),
	// then what the rounds freed themselves (the scrub bucket's rewritten
	// pages, the free list), which holds no record, until little is left.
	// The cap ends it whatever bbolt does.
	limit := free + 4*scrubChunkPages
	for first := true; free > 0 && (first || free > 8) && total < limit; first = false {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := min(free, scrubChunkPages)
		err := b.db.Update(func(tx *bbolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(scrubBucket)
			if err != nil {
				return err
			}
			bk.FillPercent = 1
			var k [8]byte
			for range 4 * n {
				seq++
				binary.BigEndian.PutUint64(k[:], seq)
				if err := bk.Put(k[:], filler); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("bolt: scrub free pages: %w", err)
		}
		total += n
		free = freePages(b.db)
	}
	err := b.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(scrubBucket) == nil {
			return nil
		}
		return tx.DeleteBucket(scrubBucket)
	})
	if err != nil {
		return total, fmt.Errorf("bolt: scrub free pages: %w", err)
	}
	return total, nil
}

// freePages counts the pages the next write transaction may allocate: free
// ones, and pending ones, which no reader holds at this point.
func freePages(db *bbolt.DB) int {
	st := db.Stats()
	return st.FreePageN + st.PendingPageN
}
