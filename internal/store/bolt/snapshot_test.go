package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
)

// TestSnapshotUnderWrites takes a snapshot while eight writers commit: the
// image has exactly Size bytes, passes the consistency check, and holds
// every write that was acknowledged before the snapshot began.
func TestSnapshotUnderWrites(t *testing.T) {
	b := openTest(t, bolt.Options{})
	ctx := t.Context()
	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("g%d-%06d", g, i)
				err := b.Update(ctx, func(tx store.Tx) error {
					_, err := tx.Put(ctx, "docs", key, bytes.Repeat([]byte{byte(i)}, 500), store.Condition{})
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			}
		})
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := snap.WriteTo(f)
	if err != nil {
		t.Fatal(err)
	}
	if n != snap.Size() {
		t.Errorf("wrote %d bytes, Size said %d", n, snap.Size())
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	t.Logf("snapshot of %d bytes with %d writes acknowledged before it, %d in all", n, len(before), len(acked))
	mu.Unlock()

	info, err := bolt.Inspect(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys["docs"] < len(before) {
		t.Errorf("snapshot has %d docs, %d were acknowledged before it", info.Keys["docs"], len(before))
	}
	restored, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	err = restored.View(ctx, func(tx store.Tx) error {
		for _, k := range before {
			if _, err := tx.Get(ctx, "docs", k); err != nil {
				return fmt.Errorf("%s, acknowledged before the snapshot: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotStopsWithContext: a cancelled request ends the copy.
func TestSnapshotStopsWithContext(t *testing.T) {
	b := openTest(t, bolt.Options{})
	fill(t, b, 100, 1000)
	ctx, cancel := contextWithCancel(t)
	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	cancel()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err == nil {
		t.Fatal("WriteTo after cancel succeeded")
	}
}

func TestInspectRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"empty":   nil,
		"short":   []byte("not a database"),
		"garbage": bytes.Repeat([]byte("zdps"), 8192),
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := bolt.Inspect(p, time.Second); !errors.Is(err, bolt.ErrNotBolt) {
				t.Fatalf("Inspect: %v, want ErrNotBolt", err)
			}
		})
	}
	if _, err := bolt.Inspect(dir, time.Second); !errors.Is(err, bolt.ErrNotBolt) {
		t.Fatalf("Inspect of a directory: %v, want ErrNotBolt", err)
	}
}

// TestCompactShrinks fills a file, deletes nine keys in ten and compacts:
// the file shrinks to about its live size, every kept key is intact, the
// original is kept as .bak and the result checks clean.
func TestCompactShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zdps.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 20000, 1000
	fill(t, b, n, size)
	ctx := t.Context()
	err = b.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			if i%10 != 0 {
				if err := tx.Delete(ctx, "docs", fillKey(i), store.Condition{}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var calls int
	var last bolt.CompactProgress
	res, err := bolt.CompactFile(ctx, path, bolt.CompactOptions{TxSize: 256 << 10, Progress: func(p bolt.CompactProgress) { calls++; last = p }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d → %d bytes, %d keys, %d progress calls", res.Before, res.After, res.Keys, calls)
	// bbolt grows small files by doubling, so the file may be up to
	// twice its pages.
	live := int64(n / 10 * size)
	if res.After >= res.Before/3 || res.After > 3*live {
		t.Errorf("compacted to %d bytes from %d; live data is %d", res.After, res.Before, live)
	}
	if res.Keys != n/10 {
		t.Errorf("copied %d keys, want %d", res.Keys, n/10)
	}
	if last.Done != last.Total || last.Total == 0 || calls < 3 {
		t.Errorf("progress: %d calls, last %+v", calls, last)
	}
	if fi, err := os.Stat(res.Backup); err != nil || fi.Size() != res.Before {
		t.Errorf("backup %q: %v (size %d, want %d)", res.Backup, err, fi.Size(), res.Before)
	}
	if fi, err := os.Stat(path + ".compact"); err == nil {
		t.Errorf("temporary file left behind (%d bytes)", fi.Size())
	}
	re, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkFile(t, re) })
	err = re.View(ctx, func(tx store.Tx) error {
		items, err := tx.Scan(ctx, "docs", "", "", 0)
		if err != nil {
			return err
		}
		if len(items) != n/10 {
			return fmt.Errorf("%d docs after compaction, want %d", len(items), n/10)
		}
		for _, it := range items {
			if !bytes.Equal(it.Value, fillValue(it.Key, size)) || it.ETag == "" {
				return fmt.Errorf("%s: damaged", it.Key)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A second run would overwrite the only copy of the original.
	if _, err := bolt.CompactFile(ctx, path, bolt.CompactOptions{}); !errors.Is(err, bolt.ErrBackupExists) {
		t.Errorf("second compaction: %v, want ErrBackupExists", err)
	}
}

// TestCompactLocked: a file a server holds is refused quickly, untouched.
func TestCompactLocked(t *testing.T) {
	b := openTest(t, bolt.Options{})
	fill(t, b, 10, 100)
	_, err := bolt.CompactFile(t.Context(), b.Path(), bolt.CompactOptions{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("CompactFile on a held file: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(b.Path() + ".bak"); err == nil {
		t.Error("a refused compaction left a .bak")
	}
}

// TestCompactNestedBuckets: nested buckets and bucket sequences survive,
// across commits in the middle of a nested bucket.
func TestCompactNestedBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucket([]byte("top"))
		if err != nil {
			return err
		}
		if err := top.SetSequence(7); err != nil {
			return err
		}
		inner, err := top.CreateBucket([]byte("inner"))
		if err != nil {
			return err
		}
		for i := range 200 {
			if err := inner.Put(fmt.Appendf(nil, "k%03d", i), bytes.Repeat([]byte{1}, 100)); err != nil {
				return err
			}
		}
		// A zdps value: format 1, no ETag, then "v".
		return top.Put([]byte("zz-after-inner"), []byte("\x01\x00v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := bolt.CompactFile(t.Context(), path, bolt.CompactOptions{TxSize: 1000, NoBackup: true}); err != nil {
		t.Fatal(err)
	}
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		top := tx.Bucket([]byte("top"))
		if top == nil || top.Sequence() != 7 || string(top.Get([]byte("zz-after-inner"))) != "\x01\x00v" {
			return errors.New("top bucket not copied whole")
		}
		if n := top.Bucket([]byte("inner")).Stats().KeyN; n != 200 {
			return fmt.Errorf("inner bucket has %d keys, want 200", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".bak"); err == nil {
		t.Error("NoBackup kept a .bak")
	}
}

func fillKey(i int) string { return fmt.Sprintf("doc-%06d", i) }

func fillValue(key string, size int) []byte {
	return bytes.Repeat([]byte(key[len(key)-1:]), size)
}

// fill writes n documents of size bytes in batches of 500.
func fill(t testing.TB, b *bolt.Backend, n, size int) {
	t.Helper()
	ctx := t.Context()
	for start := 0; start < n; start += 500 {
		err := b.Update(ctx, func(tx store.Tx) error {
			for i := start; i < min(start+500, n); i++ {
				if _, err := tx.Put(ctx, "docs", fillKey(i), fillValue(fillKey(i), size), store.Condition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

// BenchmarkSnapshot streams a 20 MB store to io.Discard: the server's side
// of zdps backup.
func BenchmarkSnapshot(b *testing.B) {
	be := openTest(b, bolt.Options{})
	fill(b, be, 20000, 1000)
	var size int64
	for b.Loop() {
		snap, err := be.Snapshot(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if size, err = snap.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		snap.Close()
	}
	b.SetBytes(size)
}
