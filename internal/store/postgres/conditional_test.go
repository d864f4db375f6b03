package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/postgres"
	"github.com/zdps/zdps/internal/store/storetest"
)

// conditionalOnly runs every Update as a conditional transaction
// (store.Conditional), so that the conformance suite checks that mode too:
// a read-modify-write of one key, compare-and-swaps and creates must hold
// at READ COMMITTED as they do at SERIALIZABLE.
type conditionalOnly struct{ *postgres.Backend }

func (c conditionalOnly) Update(ctx context.Context, fn func(store.Tx) error) error {
	return c.Backend.Update(store.Conditional(ctx), fn)
}

func TestConformanceConditional(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return conditionalOnly{openTest(t, postgres.Options{})} })
}

// TestConditionalLostRace interleaves two conditional transactions by hand:
// the one whose read is stale when it writes runs again and sees the other's
// write, whatever Condition it wrote with.
func TestConditionalLostRace(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := store.Conditional(t.Context())
	if err := b.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, "b", "k", []byte("0"), store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	read, release := make(chan struct{}), make(chan struct{})
	var attempts int
	var wg sync.WaitGroup
	wg.Add(1)
	var slowErr error
	go func() {
		defer wg.Done()
		slowErr = b.Update(ctx, func(tx store.Tx) error {
			attempts++
			it, err := tx.Get(ctx, "b", "k")
			if err != nil {
				return err
			}
			if attempts == 1 {
				close(read)
				<-release
			}
			_, err = tx.Put(ctx, "b", "k", append(it.Value, 's'), store.Condition{})
			return err
		})
	}()
	<-read
	if err := b.Update(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, "b", "k")
		if err != nil {
			return err
		}
		_, err = tx.Put(ctx, "b", "k", append(it.Value, 'f'), store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	if slowErr != nil {
		t.Fatal(slowErr)
	}
	if attempts != 2 {
		t.Fatalf("the stale transaction ran %d times, want 2", attempts)
	}
	var got string
	if err := b.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, "b", "k")
		got = string(it.Value)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != "0fs" {
		t.Fatalf("value %q, want 0fs (no write lost)", got)
	}
	if b.Conflicts() != 1 {
		t.Fatalf("Conflicts() = %d, want 1", b.Conflicts())
	}
}

// TestConditionalAnswers checks that a guarded write that fails on a key
// still as the transaction read it is the caller's answer, not a retry.
func TestConditionalAnswers(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := store.Conditional(t.Context())
	for _, tc := range []struct {
		name string
		fn   func(tx store.Tx) error
		want error
	}{
		{"delete of a key read absent", func(tx store.Tx) error {
			if _, err := tx.Get(ctx, "b", "absent"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("get: %v", err)
			}
			return tx.Delete(ctx, "b", "absent", store.Condition{})
		}, store.ErrNotFound},
		{"If-Match on a key read absent", func(tx store.Tx) error {
			_, _ = tx.Get(ctx, "b", "absent")
			_, err := tx.Put(ctx, "b", "absent", nil, store.Condition{IfMatch: "x"})
			return err
		}, store.ErrNotFound},
		{"create of a key read present", func(tx store.Tx) error {
			if _, err := tx.Put(ctx, "b", "present", nil, store.Condition{}); err != nil {
				return err
			}
			_, err := tx.Put(ctx, "b", "present", nil, store.Condition{IfNoneMatch: true})
			return err
		}, store.ErrConflict},
		{"If-None-Match delete", func(tx store.Tx) error {
			_, _ = tx.Get(ctx, "b", "absent")
			return tx.Delete(ctx, "b", "absent", store.Condition{IfNoneMatch: true})
		}, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Retries()
			if err := b.Update(ctx, tc.fn); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if n := b.Retries() - before; n != 0 {
				t.Fatalf("%d retries, want none", n)
			}
		})
	}
}
