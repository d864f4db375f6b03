package tpmatt_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/sweep"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

func challengeIDs(t *testing.T, b store.Backend) []string {
	t.Helper()
	var out []string
	err := b.View(context.Background(), func(tx store.Tx) error {
		items, err := tx.Scan(context.Background(), tpmatt.BucketChallenges, "", "", 0)
		for _, it := range items {
			out = append(out, it.Key)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPruneExpiredChallenges(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	tests := []struct {
		name   string
		keys   []tpmatt.ChallengeKey
		pruned bool
	}{
		{name: "pending", keys: []tpmatt.ChallengeKey{{ExpiresAt: now.Add(time.Second)}}},
		{name: "pending expired", pruned: true, keys: []tpmatt.ChallengeKey{{ExpiresAt: now}}},
		{name: "spent, within the poll window", keys: []tpmatt.ChallengeKey{{ExpiresAt: now.Add(-time.Hour), SpentAt: at(-tpmatt.DefaultPollWindow + time.Second)}}},
		{name: "spent, past the poll window", pruned: true, keys: []tpmatt.ChallengeKey{{ExpiresAt: now.Add(time.Minute), SpentAt: at(-tpmatt.DefaultPollWindow)}}},
		{name: "one usable key of several", keys: []tpmatt.ChallengeKey{{ExpiresAt: now.Add(-time.Hour)}, {ExpiresAt: now.Add(time.Minute)}}},
		{name: "no key", pruned: true},
	}
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			b := be.Open(t)
			clock := func() time.Time { return now }
			st := store.New(b, clock)
			a, err := tpmatt.New(tpmatt.Config{Store: st, Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			col := tpmatt.Challenges(b, clock)
			var want []string
			for i, tc := range tests {
				c := &tpmatt.Challenge{RegistrationID: fmt.Sprintf("dev-%d", i), Keys: tc.keys}
				if _, err := col.Put(ctx, c, store.Condition{}); err != nil {
					t.Fatal(err)
				}
				if !tc.pruned {
					want = append(want, c.StoreKey())
				}
			}
			n, err := a.PruneExpired(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tests)-len(want) {
				t.Errorf("pruned %d, want %d", n, len(tests)-len(want))
			}
			got := challengeIDs(t, b)
			for i, tc := range tests {
				if slices.Contains(got, enrollment.Key(fmt.Sprintf("dev-%d", i))) == tc.pruned {
					t.Errorf("%s: pruned = %v, want %v", tc.name, !tc.pruned, tc.pruned)
				}
			}
		})
	}
}

// TestPruneChallengesConcurrent: more than one batch, pruned by two
// replicas at once.
func TestPruneChallengesConcurrent(t *testing.T) {
	const expired, fresh = sweep.Batch + 30, 40
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			b := be.Open(t)
			clock := func() time.Time { return now }
			a, err := tpmatt.New(tpmatt.Config{Store: store.New(b, clock), Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			col := tpmatt.Challenges(b, clock)
			err = b.Update(ctx, func(tx store.Tx) error {
				for i := range expired + fresh {
					exp := now.Add(-time.Second)
					if i%5 == 0 && i/5 < fresh {
						exp = now.Add(time.Minute)
					}
					c := &tpmatt.Challenge{RegistrationID: fmt.Sprintf("dev-%04d", i), Keys: []tpmatt.ChallengeKey{{ExpiresAt: exp}}}
					if _, err := col.In(tx).Put(ctx, c, store.Condition{}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var total atomic.Int64
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					n, err := a.PruneExpired(ctx, now)
					if err != nil {
						t.Error(err)
					}
					total.Add(int64(n))
				})
			}
			wg.Wait()
			if total.Load() != expired {
				t.Errorf("pruned %d in all, want %d", total.Load(), expired)
			}
			if n := len(challengeIDs(t, b)); n != fresh {
				t.Errorf("%d challenges left, want %d", n, fresh)
			}
		})
	}
}
