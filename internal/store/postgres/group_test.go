package postgres_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/postgres"
)

// TestGroupedWrites: a conditional transaction's deferred writes go out
// grouped by kind (creates, upserts, compare-and-swaps, deletes), and what
// commits is what one statement per write would have committed: the last
// of two writes of one key wins, and every other key holds its write.
func TestGroupedWrites(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := store.Conditional(t.Context())
	if err := b.Update(ctx, func(tx store.Tx) error {
		for _, k := range []string{"cas1", "cas2", "del1", "del2"} {
			if _, err := tx.Put(ctx, "b", k, []byte("old"), store.Condition{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before, statements := b.RoundTrips(), b.Statements()
	if err := b.Update(ctx, func(tx store.Tx) error {
		if err := store.Prefetch(ctx, tx,
			store.Read{Bucket: "b", Key: "cas1"}, store.Read{Bucket: "b", Key: "cas2"},
			store.Read{Bucket: "b", Key: "del1"}, store.Read{Bucket: "b", Key: "del2"},
			store.Read{Bucket: "b", Key: "absent"}, store.Read{Bucket: "b", Key: "cas1"}); err != nil {
			return err
		}
		for _, k := range []string{"cas1", "cas2"} {
			it, err := tx.Get(ctx, "b", k)
			if err != nil || string(it.Value) != "old" {
				return fmt.Errorf("prefetched %s: %q %v", k, it.Value, err)
			}
			if _, err := tx.Put(ctx, "b", k, []byte("new"), store.Condition{IfMatch: it.ETag}); err != nil {
				return err
			}
		}
		if _, err := tx.Get(ctx, "b", "absent"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("prefetched absent: %v", err)
		}
		for _, k := range []string{"del1", "del2"} {
			if err := tx.Delete(ctx, "b", k, store.Condition{}); err != nil {
				return err
			}
		}
		for i, k := range []string{"new1", "new2", "new3"} {
			if _, err := tx.Put(ctx, "b", k, fmt.Appendf(nil, "%d", i), store.Condition{IfNoneMatch: true}); err != nil {
				return err
			}
		}
		for _, v := range []string{"first", "second"} {
			if _, err := tx.Put(ctx, "b", "twice", []byte(v), store.Condition{}); err != nil {
				return err
			}
		}
		_, err := tx.Put(ctx, "b", "up", []byte("up"), store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := b.RoundTrips() - before; n != 2 {
		t.Errorf("%d round trips, want 2 (BEGIN+prefetch, writes+COMMIT)", n)
	}
	// BEGIN, the six reads as one; the CASes, the deletes, the creates
	// and the first "twice" as one each, the second "twice" with "up"
	// (two writes of one key never share one); COMMIT. One statement per
	// read and write would be 18.
	if n := b.Statements() - statements; n != 8 {
		t.Errorf("%d statements, want 8", n)
	}
	want := map[string]string{"cas1": "new", "cas2": "new", "new1": "0", "new2": "1", "new3": "2", "twice": "second", "up": "up"}
	if err := b.View(ctx, func(tx store.Tx) error {
		items, err := tx.Scan(ctx, "b", "", "", 0)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, it := range items {
			got[it.Key] = string(it.Value)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("stored %v, want %v", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := b.Retries(); n != 0 {
		t.Errorf("%d retries, want none", n)
	}
}

// TestGroupedLostRace: when a key that a grouped compare-and-swap carries
// changed since the transaction read it, the transaction runs again and
// writes on what it reads then.
func TestGroupedLostRace(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := store.Conditional(t.Context())
	if err := b.Update(ctx, func(tx store.Tx) error {
		for _, k := range []string{"a", "c"} {
			if _, err := tx.Put(ctx, "b", k, []byte("0"), store.Condition{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	if err := b.Update(ctx, func(tx store.Tx) error {
		attempts++
		vals := map[string]string{}
		for _, k := range []string{"a", "c"} {
			it, err := tx.Get(ctx, "b", k)
			if err != nil {
				return err
			}
			vals[k] = string(it.Value)
		}
		if attempts == 1 {
			// Another writer changes c between the read and the write.
			if err := b.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Put(ctx, "b", "c", []byte("other"), store.Condition{})
				return err
			}); err != nil {
				return err
			}
		}
		for _, k := range []string{"a", "c"} {
			if _, err := tx.Put(ctx, "b", k, []byte(vals[k]+"+1"), store.Condition{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("%d attempts, want 2", attempts)
	}
	for k, want := range map[string]string{"a": "0+1", "c": "other+1"} {
		if err := b.View(ctx, func(tx store.Tx) error {
			it, err := tx.Get(ctx, "b", k)
			if err != nil || string(it.Value) != want {
				return fmt.Errorf("%s = %q, %v; want %q", k, it.Value, err, want)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
}
