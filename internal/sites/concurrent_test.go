package sites

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/dps"
)

// Concurrent writes to one site's enrollments each get their own feed
// entry (the head serializes them), and concurrent pushes of one record
// store it once.
func TestConcurrentFeedAndPush(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant")
			gw, _ := e.gateway("gw-1", "plant")
			_, cur := e.pullAll(gw, "", 100)
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Go(func() { e.putEnrollment(fmt.Sprintf("dev-%02d", i), "plant") })
			}
			wg.Wait()
			chs, _ := e.pullAll(gw, cur, 5)
			seen := map[string]bool{}
			seqs := map[uint64]bool{}
			for _, c := range chs {
				seen[c.ID], seqs[c.Seq] = true, true
			}
			if len(chs) != 16 || len(seen) != 16 || len(seqs) != 16 {
				t.Fatalf("%d changes, %d IDs, %d seqs", len(chs), len(seen), len(seqs))
			}

			sub, subKey := e.siteCA(gw)
			rec := pushed("dev-00", "e1", time.Now(), leaf(t, sub, subKey, "zdps-site-plant", "dev-00"))
			results := make([]string, 8)
			for i := range results {
				wg.Go(func() {
					res, err := e.svc.IngestRecords(context.Background(), gw, []dps.GatewayRecord{rec})
					if err != nil {
						t.Error(err)
						return
					}
					results[i] = res[0].Status
				})
			}
			wg.Wait()
			stored := 0
			for _, s := range results {
				switch s {
				case dps.RecordStored:
					stored++
				case dps.RecordDuplicate:
				default:
					t.Fatalf("status %q", s)
				}
			}
			if stored != 1 {
				t.Fatalf("stored %d times: %v", stored, results)
			}
		})
	}
}
