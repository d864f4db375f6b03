package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/storetest"
)

// openTest opens a fresh database in t.TempDir and, when the test ends,
// closes it, reopens the file and runs the consistency check on what is on
// disk, failing the test on any problem.
func openTest(t testing.TB, opts bolt.Options) *bolt.Backend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zdps.db")
	b, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkFile(t, b) })
	return b
}

func checkFile(t testing.TB, b *bolt.Backend) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	re, err := bolt.Open(b.Path(), bolt.Options{})
	if err != nil {
		t.Errorf("reopen for check: %v", err)
		return
	}
	defer re.Close()
	if err := re.Check(); err != nil {
		t.Errorf("consistency check of %s: %v", b.Path(), err)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return openTest(t, bolt.Options{}) })
}

// The suite again with batching forced on every write (no lone-writer fast
// path matters when the batch fills at once) and with a long batch delay, so
// that Batch's re-runs of failed functions are exercised.
func TestConformanceBatching(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bolt.Options
	}{
		{"tiny batches", bolt.Options{MaxBatchSize: 2}},
		{"long delay", bolt.Options{MaxBatchDelay: 50 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.RunBackend(t, func(t *testing.T) store.Backend { return openTest(t, tc.opts) })
		})
	}
}

func TestFileMode(t *testing.T) {
	b := openTest(t, bolt.Options{})
	fi, err := os.Stat(b.Path())
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		t.Fatalf("database file mode %v, want no group/other access", mode)
	}
}

func TestLockTimeout(t *testing.T) {
	b := openTest(t, bolt.Options{})
	// A second opener of the same file (as a second zdps process would be)
	// gives up after the timeout instead of hanging.
	start := time.Now()
	other, err := bolt.Open(b.Path(), bolt.Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		other.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := t.Context()
	b := openTest(t, bolt.Options{})
	var etag string
	err := b.Update(ctx, func(tx store.Tx) error {
		var err error
		etag, err = tx.Put(ctx, "b", "k", []byte("v"), store.Condition{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	re, err := bolt.Open(b.Path(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	err = re.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, "b", "k")
		if err != nil {
			return err
		}
		if string(it.Value) != "v" || it.ETag != etag {
			t.Errorf("after reopen: %q etag %q, want v etag %q", it.Value, it.ETag, etag)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
