package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestPipelinedRoundTrips counts what a conditional transaction of a read
// and three writes sends: the BEGIN with the read, the writes with the
// COMMIT. A one-shot read is one round trip.
func TestPipelinedRoundTrips(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := store.Conditional(t.Context())
	before := b.RoundTrips()
	if err := b.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, "b", "k"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get: %v", err)
		}
		for _, k := range []string{"k", "i1", "i2"} {
			if _, err := tx.Put(ctx, "b", k, []byte(k), store.Condition{IfNoneMatch: k != "i2"}); err != nil {
				return err
			}
		}
		// Read-your-writes from what is pending, no round trip.
		it, err := tx.Get(ctx, "b", "i1")
		if err != nil || string(it.Value) != "i1" {
			return fmt.Errorf("pending write read back as %q, %v", it.Value, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := b.RoundTrips() - before; n != 2 {
		t.Errorf("%d round trips, want 2 (BEGIN+read, writes+COMMIT)", n)
	}
	before = b.RoundTrips()
	if err := store.ViewOne(ctx, b, func(tx store.Tx) error {
		_, err := tx.Get(ctx, "b", "k")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := b.RoundTrips() - before; n != 1 {
		t.Errorf("one-shot read: %d round trips, want 1", n)
	}
	if err := store.ViewOne(ctx, b, func(tx store.Tx) error {
		_, _ = tx.Get(ctx, "b", "k")
		_, err := tx.Get(ctx, "b", "i1")
		return err
	}); err == nil {
		t.Error("a second statement in a one-shot read succeeded")
	}
	before = b.RoundTrips()
	get := func(key string) func(store.Tx) error {
		return func(tx store.Tx) error { _, err := tx.Get(ctx, "b", key); return err }
	}
	if err := store.ViewEach(ctx, b, get("k"), get("i1"), get("i2")); err != nil {
		t.Fatal(err)
	}
	if n := b.RoundTrips() - before; n != 1 {
		t.Errorf("three one-shot reads at once: %d round trips, want 1", n)
	}
	if err := store.ViewEach(ctx, b, get("k"), func(tx store.Tx) error {
		_, _ = tx.Get(ctx, "b", "k")
		_, err := tx.Get(ctx, "b", "i1")
		return err
	}); err == nil {
		t.Error("a second statement in a read of ViewEach succeeded")
	}
}

// TestDeferredCreateConflict: a create of a taken key that was not read
// first fails the transaction with ErrConflict, and nothing of it commits:
// alone among other writes, and grouped with other creates (group.go),
// where the transaction runs again one statement per write to tell which
// key failed, or, with MaxAttempts 1, is never grouped.
func TestDeferredCreateConflict(t *testing.T) {
	for _, tc := range []struct {
		name     string
		attempts int
		creates  []string
	}{
		{"alone", 0, []string{"taken"}},
		{"grouped", 0, []string{"free1", "taken", "free2"}},
		{"grouped, one attempt", 1, []string{"free1", "taken", "free2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openTest(t, postgres.Options{MaxAttempts: tc.attempts})
			ctx := store.Conditional(t.Context())
			if err := b.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Put(ctx, "b", "taken", []byte("first"), store.Condition{})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			err := b.Update(ctx, func(tx store.Tx) error {
				if _, err := tx.Put(ctx, "b", "other", []byte("x"), store.Condition{}); err != nil {
					return err
				}
				for _, k := range tc.creates {
					if _, err := tx.Put(ctx, "b", k, []byte("second"), store.Condition{IfNoneMatch: true}); err != nil {
						return err
					}
				}
				return nil
			})
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("got %v, want ErrConflict", err)
			}
			if err := b.View(ctx, func(tx store.Tx) error {
				items, err := tx.Scan(ctx, "b", "", "", 0)
				if err != nil {
					return err
				}
				if len(items) != 1 || items[0].Key != "taken" || string(items[0].Value) != "first" {
					return fmt.Errorf("stored %+v, want only taken=first", items)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLockHoldsAgainstWriters: a shared lock keeps a writer out until the
// locking transaction ends.
func TestLockHoldsAgainstWriters(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := store.Conditional(t.Context())
	if err := b.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, "b", "g", []byte("enabled"), store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	locked, release := make(chan struct{}), make(chan struct{})
	var released atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = b.Update(ctx, func(tx store.Tx) error {
			if _, err := store.GetLocked(ctx, tx, "b", "g", false); err != nil {
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	done := make(chan bool, 1)
	go func() {
		err := b.Update(t.Context(), func(tx store.Tx) error {
			_, err := tx.Put(ctx, "b", "g", []byte("disabled"), store.Condition{})
			return err
		})
		done <- err == nil && released.Load()
	}()
	select {
	case <-done:
		t.Fatal("the writer finished while the lock was held")
	case <-time.After(300 * time.Millisecond):
	}
	released.Store(true)
	close(release)
	wg.Wait()
	if ok := <-done; !ok {
		t.Fatal("the writer failed, or finished before the lock was released")
	}
}

// TestPrefetch reads several keys (one locked) in one round trip; the Gets
// and Locks after it are answered from what it read.
func TestPrefetch(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := store.Conditional(t.Context())
	if err := b.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, "b", "x", []byte("1"), store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := b.RoundTrips()
	if err := b.Update(ctx, func(tx store.Tx) error {
		if err := store.Prefetch(ctx, tx, store.Read{Bucket: "b", Key: "x", Lock: true}, store.Read{Bucket: "b", Key: "absent"}); err != nil {
			return err
		}
		if it, err := store.GetLocked(ctx, tx, "b", "x", false); err != nil || string(it.Value) != "1" {
			return fmt.Errorf("locked x: %q %v", it.Value, err)
		}
		if _, err := tx.Get(ctx, "b", "absent"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("absent: %v", err)
		}
		// A write of a prefetched key is guarded by what was read.
		_, err := tx.Put(ctx, "b", "absent", []byte("now"), store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := b.RoundTrips() - before; n != 2 {
		t.Errorf("%d round trips, want 2 (BEGIN+prefetch, write+COMMIT)", n)
	}
}
