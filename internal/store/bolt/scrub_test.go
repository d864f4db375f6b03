package bolt_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
)

// What a rewrite replaced stays in the file's free pages until bbolt
// reuses them; ScrubFreeSpace overwrites them, and leaves the live data,
// the file's consistency and (nearly) its size as they were.
func TestScrubFreeSpace(t *testing.T) {
	ctx := t.Context()
	b := openTest(t, bolt.Options{})
	secret := func(i int) []byte {
		return []byte(fmt.Sprintf("plaintext-secret-%05d-", i) + string(bytes.Repeat([]byte("s"), 200)))
	}
	const n = 3000
	write := func(f func(i int) []byte) {
		err := b.Update(ctx, func(tx store.Tx) error {
			for i := range n {
				if _, err := tx.Put(ctx, "docs", fmt.Sprintf("doc-%05d", i), f(i), store.Condition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write(secret)
	write(func(i int) []byte {
		return []byte(fmt.Sprintf("sealed-%05d-", i) + string(bytes.Repeat([]byte("c"), 300)))
	})
	count := func() int {
		raw, err := os.ReadFile(b.Path())
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(raw, []byte("plaintext-secret-"))
	}
	before := count()
	if before == 0 {
		t.Fatal("the rewrite left no old value in the file: the test proves nothing")
	}
	sizeBefore := fileSize(t, b.Path())
	pages, err := b.ScrubFreeSpace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after := count(); after != 0 {
		t.Fatalf("%d old values left after scrubbing %d pages (%d before)", after, pages, before)
	}
	if grown := fileSize(t, b.Path()) - sizeBefore; grown > 1<<20 {
		t.Fatalf("the file grew by %d bytes", grown)
	}
	t.Logf("%d old values in free pages; %d pages overwritten; file %d -> %d bytes", before, pages, sizeBefore, fileSize(t, b.Path()))
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	err = b.View(ctx, func(tx store.Tx) error {
		items, err := tx.Scan(ctx, "docs", "", "", 0)
		if err != nil {
			return err
		}
		if len(items) != n || !bytes.HasPrefix(items[42].Value, []byte("sealed-00042-")) {
			t.Fatalf("live data changed: %d items", len(items))
		}
		if l, ok := tx.(store.BucketLister); ok {
			bs, err := l.Buckets(ctx)
			if err != nil || len(bs) != 1 {
				t.Fatalf("buckets after the scrub: %v, %v", bs, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
