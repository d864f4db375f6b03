package sites

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/dps"
)

func TestRetention(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant")
			gw, _ := e.gateway("gw-1", "plant")
			_, old := e.pullAll(gw, "", 100)
			e.putEnrollment("dev-1", "plant")
			_, recent := e.pullAll(gw, old, 100)
			at := time.Now().UTC()
			if _, err := e.svc.IngestAudit(context.Background(), gw, []dps.AuditEvent{{ID: "e1", Time: at, Action: "a", Outcome: "success", Actor: "device"}}); err != nil {
				t.Fatal(err)
			}
			p, err := NewPruner(e.b, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			// Nothing is old yet.
			if n, err := p.PruneExpired(context.Background(), time.Now()); err != nil || n != 0 {
				t.Fatalf("pruned %d, %v", n, err)
			}
			n, err := p.PruneExpired(context.Background(), time.Now().Add(2*time.Hour))
			if err != nil || n < 3 { // the site, gw-1, dev-1 entries and the audit ID
				t.Fatalf("pruned %d, %v", n, err)
			}
			// A cursor from before the pruned entries must start over...
			if _, err := e.svc.Pull(context.Background(), gw, old, 10); !errors.Is(err, ErrCursor) {
				t.Fatalf("old cursor: %v", err)
			}
			// ... one that saw them goes on, and a snapshot works.
			e.putEnrollment("dev-2", "plant")
			if chs, _ := e.pullAll(gw, recent, 10); !slices.Equal(brief(chs), []string{"enrollment:dev-2:upsert"}) {
				t.Fatalf("recent cursor: %v", brief(chs))
			}
			if chs, _ := e.pullAll(gw, "", 10); len(chs) != 4 {
				t.Fatalf("snapshot %v", brief(chs))
			}
			// An audit ID forgotten after the retention is recorded again
			// (a gateway re-pushes only its last push, within minutes).
			res, err := e.svc.IngestAudit(context.Background(), gw, []dps.AuditEvent{{ID: "e1", Time: at, Action: "a", Outcome: "success", Actor: "device"}})
			if err != nil || res.Recorded != 1 {
				t.Fatalf("after pruning: %+v, %v", res, err)
			}
		})
	}
}
