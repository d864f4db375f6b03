package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zdps/zdps/internal/store"
)

// Run runs the whole suite; open returns a fresh, empty backend each time
// it is called.
func Run(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("Backend", func(t *testing.T) { RunBackend(t, open) })
	t.Run("Typed", func(t *testing.T) { RunTyped(t, open) })
}

// RunBackend runs the part of the suite that checks store.Backend directly.
func RunBackend(t *testing.T, open func(t *testing.T) store.Backend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, b store.Backend)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"Conditions", testConditions},
		{"ETagChangesOnEveryWrite", testETagChanges},
		{"ErrorRollsBackEverything", testRollback},
		{"ReadYourOwnWrites", testReadYourOwnWrites},
		{"Scan", testScan},
		{"ArbitraryValues", testValues},
		{"ValuesAreCopies", testValueCopies},
		{"WriteInViewFails", testWriteInView},
		{"CancelledContext", testCancelled},
		{"Closed", testClosed},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"ConcurrentIndependentWrites", testConcurrentIndependent},
		{"ConcurrentReadModifyWrite", testConcurrentCounter},
		{"AtomicVisibility", testAtomicVisibility},
		{"ViewEach", testViewEach},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

const bk store.Bucket = "conformance"

// put writes one value in its own transaction.
func put(ctx context.Context, b store.Backend, bucket store.Bucket, key string, value []byte, cond store.Condition) (string, error) {
	var etag string
	err := b.Update(ctx, func(tx store.Tx) error {
		var err error
		etag, err = tx.Put(ctx, bucket, key, value, cond)
		return err
	})
	return etag, err
}

func get(ctx context.Context, b store.Backend, bucket store.Bucket, key string) (store.Item, error) {
	var it store.Item
	err := b.View(ctx, func(tx store.Tx) error {
		var err error
		it, err = tx.Get(ctx, bucket, key)
		return err
	})
	return it, err
}

func del(ctx context.Context, b store.Backend, bucket store.Bucket, key string, cond store.Condition) error {
	return b.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, bucket, key, cond) })
}

func scan(ctx context.Context, b store.Backend, bucket store.Bucket, prefix, after string, limit int) ([]store.Item, error) {
	var items []store.Item
	err := b.View(ctx, func(tx store.Tx) error {
		var err error
		items, err = tx.Scan(ctx, bucket, prefix, after, limit)
		return err
	})
	return items, err
}

func mustPut(t *testing.T, b store.Backend, bucket store.Bucket, key string, value []byte) string {
	t.Helper()
	etag, err := put(t.Context(), b, bucket, key, value, store.Condition{})
	if err != nil {
		t.Fatalf("Put %s/%q: %v", bucket, key, err)
	}
	return etag
}

// wantItem fails unless key holds value.
func wantItem(t *testing.T, b store.Backend, bucket store.Bucket, key string, value []byte) store.Item {
	t.Helper()
	it, err := get(t.Context(), b, bucket, key)
	if err != nil {
		t.Fatalf("Get %s/%q: %v", bucket, key, err)
	}
	if it.Key != key || !bytes.Equal(it.Value, value) || it.ETag == "" {
		t.Fatalf("Get %s/%q = {%q, %q, etag %q}, want {%q, %q, non-empty etag}", bucket, key, it.Key, it.Value, it.ETag, key, value)
	}
	return it
}

func wantAbsent(t *testing.T, b store.Backend, bucket store.Bucket, key string) {
	t.Helper()
	if it, err := get(t.Context(), b, bucket, key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get %s/%q = %+v, %v; want ErrNotFound", bucket, key, it, err)
	}
}

func testGetPutDelete(t *testing.T, b store.Backend) {
	ctx := t.Context()
	// A bucket nothing was ever written to reads as empty.
	wantAbsent(t, b, "never-written", "k")
	if items, err := scan(ctx, b, "never-written", "", "", 0); err != nil || len(items) != 0 {
		t.Fatalf("Scan of unwritten bucket = %v, %v; want empty", items, err)
	}
	if err := del(ctx, b, "never-written", "k", store.Condition{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete in unwritten bucket = %v, want ErrNotFound", err)
	}

	e1 := mustPut(t, b, bk, "k", []byte("v1"))
	if got := wantItem(t, b, bk, "k", []byte("v1")); got.ETag != e1 {
		t.Fatalf("Get ETag = %q, Put returned %q", got.ETag, e1)
	}
	e2 := mustPut(t, b, bk, "k", []byte("v2"))
	if got := wantItem(t, b, bk, "k", []byte("v2")); got.ETag != e2 {
		t.Fatalf("Get ETag = %q, Put returned %q", got.ETag, e2)
	}
	// Buckets are separate keyspaces.
	wantAbsent(t, b, "other", "k")
	mustPut(t, b, "other", "k", []byte("o"))
	wantItem(t, b, bk, "k", []byte("v2"))

	if err := del(ctx, b, bk, "k", store.Condition{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantAbsent(t, b, bk, "k")
	wantItem(t, b, "other", "k", []byte("o"))
	if err := del(ctx, b, bk, "k", store.Condition{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
}

func testConditions(t *testing.T, b store.Backend) {
	const stale = "0000000000000000"
	for _, tc := range []struct {
		name    string
		present bool
		// cond builds the condition from the current ETag ("" when absent).
		cond    func(etag string) store.Condition
		wantPut error
		wantDel error
	}{
		{"absent/unconditional", false, func(string) store.Condition { return store.Condition{} }, nil, store.ErrNotFound},
		{"present/unconditional", true, func(string) store.Condition { return store.Condition{} }, nil, nil},
		{"absent/IfNoneMatch", false, func(string) store.Condition { return store.Condition{IfNoneMatch: true} }, nil, store.ErrNotFound},
		{"present/IfNoneMatch", true, func(string) store.Condition { return store.Condition{IfNoneMatch: true} }, store.ErrConflict, store.ErrConflict},
		{"absent/IfMatch*", false, func(string) store.Condition { return store.Condition{IfMatch: "*"} }, store.ErrNotFound, store.ErrNotFound},
		{"present/IfMatch*", true, func(string) store.Condition { return store.Condition{IfMatch: "*"} }, nil, nil},
		{"absent/IfMatchETag", false, func(string) store.Condition { return store.Condition{IfMatch: stale} }, store.ErrNotFound, store.ErrNotFound},
		{"present/IfMatchCurrent", true, func(e string) store.Condition { return store.Condition{IfMatch: e} }, nil, nil},
		{"present/IfMatchStale", true, func(string) store.Condition { return store.Condition{IfMatch: stale} }, store.ErrPreconditionFailed, store.ErrPreconditionFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			for _, op := range []string{"Put", "Delete"} {
				key := tc.name + "/" + op
				var etag string
				if tc.present {
					etag = mustPut(t, b, bk, key, []byte("before"))
				}
				want := tc.wantPut
				var err error
				if op == "Put" {
					var got string
					got, err = put(ctx, b, bk, key, []byte("after"), tc.cond(etag))
					if err == nil && (got == "" || got == etag) {
						t.Errorf("Put returned ETag %q (before: %q); want a new one", got, etag)
					}
				} else {
					want = tc.wantDel
					err = del(ctx, b, bk, key, tc.cond(etag))
				}
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("%s = %v, want %v", op, err, want)
				}
				// A refused write changes nothing; an accepted one lands.
				switch {
				case err != nil && tc.present:
					if it := wantItem(t, b, bk, key, []byte("before")); it.ETag != etag {
						t.Fatalf("refused %s changed the ETag", op)
					}
				case err != nil:
					wantAbsent(t, b, bk, key)
				case op == "Put":
					wantItem(t, b, bk, key, []byte("after"))
				default:
					wantAbsent(t, b, bk, key)
				}
			}
		})
	}
}

func testETagChanges(t *testing.T, b store.Backend) {
	seen := map[string]bool{}
	for i := range 50 {
		// The same value every time: the ETag versions the write, not
		// the content.
		etag := mustPut(t, b, bk, "k", []byte("same"))
		if etag == "" || seen[etag] {
			t.Fatalf("write %d: ETag %q empty or reused", i, etag)
		}
		seen[etag] = true
	}
	// Deleting and re-creating does not bring an old ETag back, or an
	// If-Match held from before the delete would match the new value.
	for i := range 10 {
		if err := del(t.Context(), b, bk, "k", store.Condition{}); err != nil {
			t.Fatal(err)
		}
		etag := mustPut(t, b, bk, "k", []byte("same"))
		if seen[etag] {
			t.Fatalf("re-create %d: ETag %q reused", i, etag)
		}
		seen[etag] = true
	}
}

var errAbort = errors.New("storetest: abort")

func testRollback(t *testing.T, b store.Backend) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		// last is the final step of the transaction: it fails, by
		// returning an error of its own or one from the backend.
		last    func(tx store.Tx) error
		wantErr error
	}{
		{"fn error", func(store.Tx) error { return errAbort }, errAbort},
		{"refused write", func(tx store.Tx) error {
			_, err := tx.Put(ctx, bk, "existing", []byte("x"), store.Condition{IfNoneMatch: true})
			return err
		}, store.ErrConflict},
		{"stale If-Match", func(tx store.Tx) error {
			_, err := tx.Put(ctx, bk, "existing", []byte("x"), store.Condition{IfMatch: "0000000000000000"})
			return err
		}, store.ErrPreconditionFailed},
		{"wrapped error", func(store.Tx) error { return fmt.Errorf("step 4: %w", errAbort) }, errAbort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newBucket := store.Bucket("rollback-new-" + strings.ReplaceAll(tc.name, " ", "-"))
			existing := mustPut(t, b, bk, "existing", []byte("orig"))
			mustPut(t, b, bk, "doomed", []byte("orig"))
			err := b.Update(ctx, func(tx store.Tx) error {
				// Writes of every kind, to an existing and a new bucket.
				if _, err := tx.Put(ctx, bk, "existing", []byte("changed"), store.Condition{IfMatch: existing}); err != nil {
					return err
				}
				if _, err := tx.Put(ctx, bk, "created", []byte("new"), store.Condition{IfNoneMatch: true}); err != nil {
					return err
				}
				if _, err := tx.Put(ctx, newBucket, "k", []byte("new"), store.Condition{}); err != nil {
					return err
				}
				if err := tx.Delete(ctx, bk, "doomed", store.Condition{}); err != nil {
					return err
				}
				return tc.last(tx)
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Update = %v, want %v", err, tc.wantErr)
			}
			if it := wantItem(t, b, bk, "existing", []byte("orig")); it.ETag != existing {
				t.Errorf("existing: ETag %q, want %q", it.ETag, existing)
			}
			wantAbsent(t, b, bk, "created")
			wantAbsent(t, b, newBucket, "k")
			wantItem(t, b, bk, "doomed", []byte("orig"))
			if items, err := scan(ctx, b, newBucket, "", "", 0); err != nil || len(items) != 0 {
				t.Errorf("Scan of rolled-back bucket = %v, %v; want empty", items, err)
			}
		})
	}
}

func testReadYourOwnWrites(t *testing.T, b store.Backend) {
	ctx := t.Context()
	mustPut(t, b, bk, "a", []byte("a0"))
	mustPut(t, b, bk, "c", []byte("c0"))
	err := b.Update(ctx, func(tx store.Tx) error {
		etag, err := tx.Put(ctx, bk, "b", []byte("b1"), store.Condition{IfNoneMatch: true})
		if err != nil {
			return err
		}
		it, err := tx.Get(ctx, bk, "b")
		if err != nil || string(it.Value) != "b1" || it.ETag != etag {
			return fmt.Errorf("Get of own write = %+v, %v; want b1 with ETag %q", it, err, etag)
		}
		// The ETag just returned is the one a condition in the same
		// transaction sees.
		if _, err := tx.Put(ctx, bk, "b", []byte("b2"), store.Condition{IfMatch: etag}); err != nil {
			return fmt.Errorf("If-Match with own ETag: %w", err)
		}
		if err := tx.Delete(ctx, bk, "a", store.Condition{}); err != nil {
			return err
		}
		if _, err := tx.Get(ctx, bk, "a"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get of own delete = %v, want ErrNotFound", err)
		}
		if _, err := tx.Put(ctx, bk, "c", []byte("c1"), store.Condition{}); err != nil {
			return err
		}
		items, err := tx.Scan(ctx, bk, "", "", 0)
		if err != nil {
			return err
		}
		if got, want := render(items), "b=b2 c=c1"; got != want {
			return fmt.Errorf("Scan inside tx = %s, want %s", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := scan(ctx, b, bk, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := render(items), "b=b2 c=c1"; got != want {
		t.Fatalf("Scan after commit = %s, want %s", got, want)
	}
}

func render(items []store.Item) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = fmt.Sprintf("%s=%s", it.Key, it.Value)
	}
	return strings.Join(s, " ")
}

func keys(items []store.Item) []string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = it.Key
	}
	return s
}

func testScan(t *testing.T, b store.Backend) {
	// Byte order, not collation: upper case before lower case, "\x01"
	// (the typed layer's index separator) before everything, multi-byte
	// UTF-8 after ASCII.
	all := []string{"A", "a", "a\x01x", "a/1", "a/2", "a/3", "ab", "b", "b/1", "z", "é"}
	shuffled := slices.Clone(all)
	for i := range shuffled { // write out of order
		j := (i * 7) % len(shuffled)
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	for _, k := range shuffled {
		mustPut(t, b, bk, k, []byte("v:"+k))
	}
	mustPut(t, b, "neighbour", "a/0", []byte("other bucket"))
	for _, tc := range []struct {
		name          string
		prefix, after string
		limit         int
		want          []string
	}{
		{"all", "", "", 0, all},
		{"negative limit is no limit", "", "", -1, all},
		{"limit", "", "", 3, []string{"A", "a", "a\x01x"}},
		{"limit larger than result", "b", "", 10, []string{"b", "b/1"}},
		{"prefix", "a/", "", 0, []string{"a/1", "a/2", "a/3"}},
		{"prefix includes the prefix itself", "a", "", 0, []string{"a", "a\x01x", "a/1", "a/2", "a/3", "ab"}},
		{"prefix with separator", "a\x01", "", 0, []string{"a\x01x"}},
		{"after", "", "a/2", 0, []string{"a/3", "ab", "b", "b/1", "z", "é"}},
		{"after is exclusive", "a/", "a/1", 0, []string{"a/2", "a/3"}},
		{"after not stored", "a/", "a/15", 0, []string{"a/2", "a/3"}},
		{"after before prefix", "b", "a", 0, []string{"b", "b/1"}},
		{"after beyond prefix", "a/", "b", 0, nil},
		{"after equals prefix", "a", "a", 0, []string{"a\x01x", "a/1", "a/2", "a/3", "ab"}},
		{"prefix after limit", "a/", "a/1", 1, []string{"a/2"}},
		{"no match", "q", "", 0, nil},
		{"after last", "", "é", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := scan(t.Context(), b, bk, tc.prefix, tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(items); !slices.Equal(got, tc.want) {
				t.Fatalf("Scan(%q, %q, %d) = %q, want %q", tc.prefix, tc.after, tc.limit, got, tc.want)
			}
			for _, it := range items {
				if string(it.Value) != "v:"+it.Key || it.ETag == "" {
					t.Fatalf("item %q = %q etag %q", it.Key, it.Value, it.ETag)
				}
			}
		})
	}
}

func testValues(t *testing.T, b store.Backend) {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"zero byte", []byte{0}},
		{"every byte", every},
		{"invalid UTF-8", []byte{0xff, 0xfe, 0xc3, 0x28}},
		{"looks like a header", []byte{1, 16, '0', '1'}},
		{"1 MiB", bytes.Repeat([]byte{0xa5, 0x00, 0x5a}, 1<<20/3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustPut(t, b, bk, tc.name, tc.value)
			wantItem(t, b, bk, tc.name, tc.value)
			items, err := scan(t.Context(), b, bk, tc.name, "", 1)
			if err != nil || len(items) != 1 || !bytes.Equal(items[0].Value, tc.value) {
				t.Fatalf("Scan = %d items, %v; want the value back", len(items), err)
			}
		})
	}
}

func testValueCopies(t *testing.T, b store.Backend) {
	ctx := t.Context()
	v := []byte("original")
	mustPut(t, b, bk, "k", v)
	copy(v, "XXXXXXXX") // the caller reuses its buffer
	it := wantItem(t, b, bk, "k", []byte("original"))
	copy(it.Value, "YYYYYYYY") // the caller scribbles on what it read
	wantItem(t, b, bk, "k", []byte("original"))
	items, err := scan(ctx, b, bk, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(items[0].Value, "ZZZZZZZZ")
	wantItem(t, b, bk, "k", []byte("original"))
}

func testWriteInView(t *testing.T, b store.Backend) {
	ctx := t.Context()
	etag := mustPut(t, b, bk, "k", []byte("v"))
	err := b.View(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, bk, "new", []byte("x"), store.Condition{})
		return err
	})
	if err == nil {
		t.Fatal("Put in View succeeded")
	}
	err = b.View(ctx, func(tx store.Tx) error { return tx.Delete(ctx, bk, "k", store.Condition{}) })
	if err == nil {
		t.Fatal("Delete in View succeeded")
	}
	wantAbsent(t, b, bk, "new")
	if it := wantItem(t, b, bk, "k", []byte("v")); it.ETag != etag {
		t.Fatal("View changed the ETag")
	}
}

func testCancelled(t *testing.T, b store.Backend) {
	mustPut(t, b, bk, "k", []byte("v"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	if err := b.View(ctx, func(store.Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("View = %v, want context.Canceled", err)
	}
	err := b.Update(ctx, func(tx store.Tx) error {
		ran = true
		_, err := tx.Put(ctx, bk, "k", []byte("changed"), store.Condition{})
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update = %v, want context.Canceled", err)
	}
	if ran {
		t.Error("fn ran under a cancelled context")
	}
	wantItem(t, b, bk, "k", []byte("v"))
}

func testClosed(t *testing.T, b store.Backend) {
	ctx := t.Context()
	mustPut(t, b, bk, "k", []byte("v"))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.View(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if err := b.Update(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
}

// start runs n goroutines that begin fn together, to maximise overlap.
func start(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			fn(i)
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
}

func testConcurrentCAS(t *testing.T, b store.Backend) {
	ctx := t.Context()
	observed := mustPut(t, b, bk, "k", []byte("v0"))
	const n = 100
	var won atomic.Int64
	var mu sync.Mutex
	var unexpected []error
	winner := -1
	start(n, func(i int) {
		_, err := put(ctx, b, bk, "k", fmt.Appendf(nil, "v%d", i+1), store.Condition{IfMatch: observed})
		switch {
		case err == nil:
			won.Add(1)
			mu.Lock()
			winner = i
			mu.Unlock()
		case !errors.Is(err, store.ErrPreconditionFailed):
			mu.Lock()
			unexpected = append(unexpected, err)
			mu.Unlock()
		}
	})
	if len(unexpected) > 0 {
		t.Fatalf("errors other than ErrPreconditionFailed: %v", errors.Join(unexpected...))
	}
	if won.Load() != 1 {
		t.Fatalf("%d of %d compare-and-swaps succeeded, want exactly 1", won.Load(), n)
	}
	// The stored value is the winner's.
	wantItem(t, b, bk, "k", fmt.Appendf(nil, "v%d", winner+1))
}

func testConcurrentIndependent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	const n = 200
	errs := make([]error, n)
	start(n, func(i int) {
		// Two buckets per transaction, one created by these writes.
		errs[i] = b.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.Put(ctx, bk, fmt.Sprintf("k%03d", i), fmt.Appendf(nil, "v%d", i), store.Condition{IfNoneMatch: true}); err != nil {
				return err
			}
			_, err := tx.Put(ctx, "concurrent-log", fmt.Sprintf("k%03d", i), nil, store.Condition{IfNoneMatch: true})
			return err
		})
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, bucket := range []store.Bucket{bk, "concurrent-log"} {
		items, err := scan(ctx, b, bucket, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != n {
			t.Fatalf("%s: %d items after %d concurrent writes", bucket, len(items), n)
		}
	}
	for i := range n {
		wantItem(t, b, bk, fmt.Sprintf("k%03d", i), fmt.Appendf(nil, "v%d", i))
	}
}

// testConcurrentCounter checks that Updates are serializable: a read and a
// write in one Update never lose a concurrent Update's write. The typed
// layer relies on it (it reads the old document to maintain indexes).
func testConcurrentCounter(t *testing.T, b store.Backend) {
	ctx := t.Context()
	const n = 50
	errs := make([]error, n)
	start(n, func(i int) {
		errs[i] = b.Update(ctx, func(tx store.Tx) error {
			it, err := tx.Get(ctx, bk, "counter")
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			var c int
			if err == nil {
				if _, err := fmt.Sscan(string(it.Value), &c); err != nil {
					return err
				}
			}
			_, err = tx.Put(ctx, bk, "counter", fmt.Append(nil, c+1), store.Condition{})
			return err
		})
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	wantItem(t, b, bk, "counter", fmt.Append(nil, n))
}

// testAtomicVisibility checks that readers never see half of a transaction.
func testAtomicVisibility(t *testing.T, b store.Backend) {
	ctx := t.Context()
	write := func(v int) error {
		return b.Update(ctx, func(tx store.Tx) error {
			for _, k := range []string{"x", "y"} {
				if _, err := tx.Put(ctx, bk, k, fmt.Append(nil, v), store.Condition{}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := write(0); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var torn atomic.Int64
	readErr := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				err := b.View(ctx, func(tx store.Tx) error {
					x, err := tx.Get(ctx, bk, "x")
					if err != nil {
						return err
					}
					y, err := tx.Get(ctx, bk, "y")
					if err != nil {
						return err
					}
					if !bytes.Equal(x.Value, y.Value) {
						torn.Add(1)
					}
					return nil
				})
				if err != nil {
					readErr <- err
					return
				}
			}
		}()
	}
	for v := 1; v <= 30; v++ {
		if err := write(v); err != nil {
			t.Error(err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(readErr)
	for err := range readErr {
		t.Error(err)
	}
	if n := torn.Load(); n > 0 {
		t.Fatalf("%d reads saw a half-applied transaction", n)
	}
}

// testViewEach: several one-shot reads at once each answer as ViewOne
// would, whatever the others find, and the first error in order is
// returned.
func testViewEach(t *testing.T, b store.Backend) {
	ctx := t.Context()
	for _, k := range []string{"a", "p/1", "p/2"} {
		if _, err := put(ctx, b, bk, k, []byte("v"+k), store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		got     store.Item
		missing error
		scanned []store.Item
		ran     bool
	)
	err := store.ViewEach(ctx, b,
		func(tx store.Tx) error {
			var err error
			got, err = tx.Get(ctx, bk, "a")
			return err
		},
		func(tx store.Tx) error {
			_, missing = tx.Get(ctx, bk, "absent")
			return nil
		},
		func(tx store.Tx) error { ran = true; return nil }, // no statement at all
		func(tx store.Tx) error {
			var err error
			scanned, err = tx.Scan(ctx, bk, "p/", "", 0)
			return err
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "va" || got.ETag == "" {
		t.Errorf("get: %q etag %q", got.Value, got.ETag)
	}
	if !errors.Is(missing, store.ErrNotFound) {
		t.Errorf("get of an absent key: %v, want ErrNotFound", missing)
	}
	if !ran {
		t.Error("a fn that reads nothing did not run")
	}
	if len(scanned) != 2 || scanned[0].Key != "p/1" || scanned[1].Key != "p/2" {
		t.Errorf("scan: %+v", scanned)
	}
	errFirst, errSecond := errors.New("first"), errors.New("second")
	err = store.ViewEach(ctx, b,
		func(tx store.Tx) error { _, _ = tx.Get(ctx, bk, "a"); return nil },
		func(tx store.Tx) error { return errFirst },
		func(tx store.Tx) error { _, _ = tx.Get(ctx, bk, "a"); return errSecond },
	)
	if !errors.Is(err, errFirst) {
		t.Errorf("ViewEach returned %v, want the first error in order", err)
	}
}
