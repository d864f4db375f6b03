// Package testbackend opens each store backend for tests that must hold on
// all of them: memory, a real bbolt file (consistency-checked when the test
// ends) and a fresh schema on the real PostgreSQL of internal/pgtest.
package testbackend

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/store/postgres"
)

// Backend names a backend and opens a fresh, empty one that is closed when
// the test ends.
type Backend struct {
	Name string
	Open func(testing.TB) store.Backend
}

// All are the three backends.
var All = []Backend{
	{"memory", func(testing.TB) store.Backend { return memory.New() }},
	{"bolt", Bolt},
	{"postgres", Postgres},
}

// Bolt opens a bbolt file in the test's temporary directory.
func Bolt(t testing.TB) store.Backend {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "zdps.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Check(); err != nil {
			t.Errorf("bolt check: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// Postgres opens a schema of the test's own; it fails t when PostgreSQL
// does not answer (pgtest).
func Postgres(t testing.TB) store.Backend {
	t.Helper()
	url, schema := pgtest.Schema(t)
	b, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after pgtest's schema drop, so it runs before it.
	t.Cleanup(func() { b.Close() })
	return b
}

// Keys lists the keys of a bucket in order; a bucket never written is
// empty.
func Keys(t testing.TB, b store.Backend, bucket store.Bucket) []string {
	t.Helper()
	var out []string
	err := b.View(context.Background(), func(tx store.Tx) error {
		items, err := tx.Scan(context.Background(), bucket, "", "", 0)
		for _, it := range items {
			out = append(out, it.Key)
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return out
}
