package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// brief is a change without its document, for comparisons.
func brief(chs []dps.Change) []string {
	out := make([]string, len(chs))
	for i, c := range chs {
		out[i] = c.Kind + ":" + c.ID + ":" + c.Op
	}
	return out
}

func TestFeedSnapshotThenChanges(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant", "hub.plant.example.net")
			e.putSite("ship")
			gw, gwKey := e.gateway("gw-1", "plant")
			e.putEnrollment("dev-a", "plant")
			e.putEnrollment("dev-b", "plant")
			e.putEnrollment("dev-c", "")
			e.putEnrollment("dev-ship", "ship")
			e.putGroup("line-1", "plant")
			e.register("dev-a", "", mustKey(t))

			snap, cur := e.pullAll(gw, "", 2)
			want := []string{"site:plant:upsert", "enrollment:dev-a:upsert", "enrollment:dev-b:upsert",
				"enrollment:gw-1:upsert", "group:line-1:upsert"}
			if got := brief(snap); !slices.Equal(got, want) {
				t.Fatalf("snapshot\n got %v\nwant %v", got, want)
			}
			for _, c := range snap {
				if c.Seq != 0 {
					t.Fatalf("snapshot change with seq %d", c.Seq)
				}
			}
			// Keys travel sealed to the gateway, bound to their document.
			doc := snap[1].Document
			if strings.Contains(string(doc), key(1)) || strings.Contains(string(doc), key(2)) {
				t.Fatalf("a key in the clear: %s", doc)
			}
			open, err := opener(t, gwKey).OpenDocument(doc, dps.ChangeEnrollment, "dev-a")
			if err != nil {
				t.Fatal(err)
			}
			got, err := enrollment.DecodeIndividualEnrollment(open)
			if err != nil {
				t.Fatalf("the opened document does not decode: %v\n%s", err, open)
			}
			if got.Attestation.SymmetricKey.PrimaryKey != key(1) || got.Site != "plant" {
				t.Fatalf("opened %+v", got.Attestation.SymmetricKey)
			}

			// Changes after the snapshot, in order.
			a := e.getEnrollment("dev-a")
			a.ProvisioningStatus = enrollment.StatusDisabled
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, a, store.Condition{IfMatch: a.ETag}); err != nil {
				t.Fatal(err)
			}
			b := e.getEnrollment("dev-b")
			b.Site = "ship" // moves away: a delete for plant
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, b, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			c := e.getEnrollment("dev-c")
			c.Site = "plant" // moves in: an upsert
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, c, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			if err := e.m.EnrollmentGroups().Delete(e.ctx, "line-1", ""); err != nil {
				t.Fatal(err)
			}
			if err := e.m.DeleteRegistration(e.ctx, "dev-a", ""); err != nil {
				t.Fatal(err)
			}
			e.putSite("plant", "hub.plant.example.net", "hub2.plant.example.net")
			e.putEnrollment("dev-ship-2", "ship") // not plant's

			chs, cur2 := e.pullAll(gw, cur, 2)
			want = []string{"enrollment:dev-a:upsert", "enrollment:dev-b:delete", "enrollment:dev-c:upsert",
				"group:line-1:delete", "registration:dev-a:delete", "site:plant:upsert"}
			if got := brief(chs); !slices.Equal(got, want) {
				t.Fatalf("changes\n got %v\nwant %v", got, want)
			}
			for i := 1; i < len(chs); i++ {
				if chs[i].Seq <= chs[i-1].Seq {
					t.Fatalf("seq not increasing: %d then %d", chs[i-1].Seq, chs[i].Seq)
				}
			}
			var disabled struct {
				ProvisioningStatus string `json:"provisioningStatus"`
			}
			_ = json.Unmarshal(chs[0].Document, &disabled)
			if disabled.ProvisioningStatus != enrollment.StatusDisabled {
				t.Fatalf("the disable is not in the upsert: %s", chs[0].Document)
			}
			var site enrollment.Site
			_ = json.Unmarshal(chs[5].Document, &site)
			if len(site.Hubs) != 2 {
				t.Fatalf("site document %s", chs[5].Document)
			}
			// Nothing more, and the cursor stays put.
			if p, err := e.svc.Pull(context.Background(), gw, cur2, 10); err != nil || len(p.Changes) != 0 || p.More || p.Cursor != cur2 {
				t.Fatalf("idle pull = %+v, %v", p, err)
			}
			// The other site's gateway sees its own.
			gw2, _ := e.gateway("gw-ship", "ship")
			ship, _ := e.pullAll(gw2, "", 100)
			want = []string{"site:ship:upsert", "enrollment:dev-b:upsert", "enrollment:dev-ship:upsert",
				"enrollment:dev-ship-2:upsert", "enrollment:gw-ship:upsert"}
			if got := brief(ship); !slices.Equal(got, want) {
				t.Fatalf("ship snapshot\n got %v\nwant %v", got, want)
			}
		})
	}
}

// A superseded upsert is skipped: the entry's document is read when it is
// pulled, and one deleted since is answered by its later delete only.
func TestFeedSkipsSuperseded(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	e.putSite("plant")
	gw, _ := e.gateway("gw-1", "plant")
	_, cur := e.pullAll(gw, "", 100)
	e.putEnrollment("dev-x", "plant")
	if err := e.m.IndividualEnrollments().Delete(e.ctx, "dev-x", ""); err != nil {
		t.Fatal(err)
	}
	chs, _ := e.pullAll(gw, cur, 100)
	if got, want := brief(chs), []string{"enrollment:dev-x:delete"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestFeedCursorSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zdps.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, b)
	e.putSite("plant")
	gw, _ := e.gateway("gw-1", "plant")
	e.putEnrollment("dev-1", "plant")
	_, cur := e.pullAll(gw, "", 100)
	e.putEnrollment("dev-2", "plant")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	e = newEnv(t, openBolt(t, path))
	gw, err = e.svc.Authenticate(context.Background(), gwCert(t, e, "gw-1"))
	if err != nil {
		t.Fatal(err)
	}
	e.putEnrollment("dev-3", "plant")
	chs, _ := e.pullAll(gw, cur, 100)
	if got, want := brief(chs), []string{"enrollment:dev-2:upsert", "enrollment:dev-3:upsert"}; !slices.Equal(got, want) {
		t.Fatalf("after restart got %v, want %v", got, want)
	}
}

func TestFeedPaging(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant")
			gw, _ := e.gateway("gw-1", "plant")
			for i := range 250 {
				e.putEnrollment(fmt.Sprintf("dev-%03d", i), "plant")
				if i%5 == 0 {
					e.putEnrollment(fmt.Sprintf("other-%03d", i), "")
				}
			}
			seen := map[string]int{}
			cur, pages := "", 0
			for {
				p, err := e.svc.Pull(context.Background(), gw, cur, 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Changes) > 100 {
					t.Fatalf("page of %d", len(p.Changes))
				}
				pages++
				for _, c := range p.Changes {
					seen[c.Kind+":"+c.ID]++
				}
				cur = p.Cursor
				// A change during the snapshot is replayed from the feed.
				if pages == 2 {
					e.putEnrollment("dev-late", "plant")
				}
				if !p.More {
					break
				}
			}
			if len(seen) != 253 { // the site, 250 devices, the gateway, dev-late
				t.Fatalf("%d distinct changes", len(seen))
			}
			for k, n := range seen {
				if n != 1 && k != "enrollment:dev-late" {
					t.Fatalf("%s seen %d times", k, n)
				}
			}
			if pages < 3 {
				t.Fatalf("%d pages", pages)
			}
		})
	}
}

func TestCursorRefused(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	e.putSite("plant")
	e.putSite("ship")
	gw, _ := e.gateway("gw-1", "plant")
	gw2, _ := e.gateway("gw-2", "ship")
	_, shipCur := e.pullAll(gw2, "", 100)
	for name, cur := range map[string]string{
		"garbage":           "not a cursor!",
		"not JSON":          "bm90IEpTT04",
		"another site's":    shipCur,
		"unknown phase":     cursor{V: 1, Site: "plant", Phase: "x"}.encode(),
		"other version":     cursor{V: 2, Site: "plant", Phase: phaseFeed}.encode(),
		"too long":          strings.Repeat("A", MaxCursorLength+1),
		"ahead of the feed": cursor{V: 1, Site: "plant", Phase: phaseFeed, Seq: 999}.encode(),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.svc.Pull(context.Background(), gw, cur, 10); !errors.Is(err, ErrCursor) || !errors.Is(err, enrollment.ErrInvalid) {
				t.Fatalf("Pull = %v, want ErrCursor (a 400)", err)
			}
		})
	}
}

// The enrollment (or group) that made a gateway leaves its site's feed
// when the gateway gets its delegated CA: another gateway of the site
// must not hold its credentials.
func TestFeedLeavesOutGateways(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant")
			gw1, _ := e.gateway("gw-1", "plant")
			gw2, _ := e.gateway("gw-2", "plant")
			e.putEnrollment("dev-1", "plant")
			_, cur := e.pullAll(gw2, "", 100)
			e.siteCA(gw1)
			chs, cur := e.pullAll(gw2, cur, 100)
			if got, want := brief(chs), []string{"enrollment:gw-1:delete"}; !slices.Equal(got, want) {
				t.Fatalf("after gw-1's CA: %v, want %v", got, want)
			}
			// Its later changes are not sent, and a snapshot leaves it out.
			en := e.getEnrollment("gw-1")
			en.ReprovisionPolicy = &enrollment.ReprovisionPolicy{}
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, en, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			if chs, _ := e.pullAll(gw2, cur, 100); len(chs) != 0 {
				t.Fatalf("gw-1's update fed: %v", brief(chs))
			}
			snap, _ := e.pullAll(gw1, "", 100)
			if got, want := brief(snap), []string{"site:plant:upsert", "enrollment:dev-1:upsert", "enrollment:gw-2:upsert"}; !slices.Equal(got, want) {
				t.Fatalf("snapshot %v, want %v", got, want)
			}
		})
	}
}
