// Package memory is the in-memory reference Backend: the simplest correct
// implementation of store.Backend, used to check the conformance suite
// itself and in tests that need no durability.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strings"
	"sync"

	"github.com/zdps/zdps/internal/store"
)

type entry struct {
	value []byte
	etag  string
}

// Backend keeps everything in maps under one lock.
type Backend struct {
	mu     sync.RWMutex
	data   map[store.Bucket]map[string]entry
	closed bool
}

// New returns an empty backend.
func New() *Backend { return &Backend{data: map[store.Bucket]map[string]entry{}} }

// View runs fn under the read lock.
func (b *Backend) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return store.ErrClosed
	}
	return fn(&tx{b: b})
}

// Update runs fn under the write lock; its writes are staged and applied only
// when fn succeeds.
func (b *Backend) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return store.ErrClosed
	}
	t := &tx{b: b, writable: true, staged: map[store.Bucket]map[string]*entry{}}
	if err := fn(t); err != nil {
		return err
	}
	for bk, m := range t.staged {
		if b.data[bk] == nil {
			b.data[bk] = map[string]entry{}
		}
		for k, e := range m {
			if e == nil {
				delete(b.data[bk], k)
			} else {
				b.data[bk][k] = *e
			}
		}
	}
	return nil
}

// Close makes every later call fail with store.ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

type tx struct {
	b        *Backend
	writable bool
	staged   map[store.Bucket]map[string]*entry // nil entry = deleted
}

func (t *tx) lookup(bk store.Bucket, key string) (entry, bool) {
	if m, ok := t.staged[bk]; ok {
		if e, ok := m[key]; ok {
			if e == nil {
				return entry{}, false
			}
			return *e, true
		}
	}
	e, ok := t.b.data[bk][key]
	return e, ok
}

func (t *tx) Get(ctx context.Context, bk store.Bucket, key string) (store.Item, error) {
	e, ok := t.lookup(bk, key)
	if !ok {
		return store.Item{}, store.ErrNotFound
	}
	return store.Item{Key: key, Value: append([]byte(nil), e.value...), ETag: e.etag}, nil
}

func (t *tx) stage(bk store.Bucket, key string, e *entry) {
	if t.staged[bk] == nil {
		t.staged[bk] = map[string]*entry{}
	}
	t.staged[bk][key] = e
}

func (t *tx) Put(ctx context.Context, bk store.Bucket, key string, value []byte, cond store.Condition) (string, error) {
	if !t.writable {
		return "", errReadOnly
	}
	old, ok := t.lookup(bk, key)
	if err := store.CheckCondition(ok, old.etag, cond); err != nil {
		return "", err
	}
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	e := &entry{value: append([]byte(nil), value...), etag: hex.EncodeToString(rb[:])}
	t.stage(bk, key, e)
	return e.etag, nil
}

func (t *tx) Delete(ctx context.Context, bk store.Bucket, key string, cond store.Condition) error {
	if !t.writable {
		return errReadOnly
	}
	old, ok := t.lookup(bk, key)
	if !ok {
		return store.ErrNotFound
	}
	if err := store.CheckCondition(ok, old.etag, cond); err != nil {
		return err
	}
	t.stage(bk, key, nil)
	return nil
}

func (t *tx) Scan(ctx context.Context, bk store.Bucket, prefix, after string, limit int) ([]store.Item, error) {
	keys := map[string]bool{}
	for k := range t.b.data[bk] {
		keys[k] = true
	}
	for k := range t.staged[bk] {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if strings.HasPrefix(k, prefix) && k > after {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	var out []store.Item
	for _, k := range sorted {
		if limit > 0 && len(out) == limit {
			break
		}
		if it, err := t.Get(ctx, bk, k); err == nil {
			out = append(out, it)
		}
	}
	return out, nil
}

type readOnlyError struct{}

func (readOnlyError) Error() string { return "memory: write in a read-only transaction" }

var errReadOnly error = readOnlyError{}
