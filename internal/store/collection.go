package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Document is what a Collection stores: a value with a case-insensitive key
// and store-maintained version fields.
type Document interface {
	StoreKey() string
	Version() *enrollment.Versioned
}

// Index is a secondary index of a collection: Of returns the index values
// of a document (none when it is not indexed). Values are case-insensitive.
type Index[T Document] struct {
	Bucket Bucket
	Of     func(T) []string
}

// indexSep separates the index value from the primary key in index keys; it
// cannot occur in validated IDs, and unlike NUL it fits a PostgreSQL text key.
const indexSep = "\x01"

// Collection stores documents of one type in one bucket.
type Collection[T Document] struct {
	backend Backend
	bucket  Bucket
	now     func() time.Time
	newT    func() T
	indexes []Index[T]
	// sealer, when set, encrypts the document's secret fields (seal.go).
	sealer Sealer
}

// NewCollection builds a collection; newT returns a fresh zero document.
func NewCollection[T Document](b Backend, bucket Bucket, now func() time.Time, newT func() T, indexes ...Index[T]) *Collection[T] {
	return &Collection[T]{backend: b, bucket: bucket, now: now, newT: newT, indexes: indexes}
}

// Get reads one document by ID (case-insensitive).
func (c *Collection[T]) Get(ctx context.Context, id string) (T, error) {
	var v T
	err := ViewOne(ctx, c.backend, func(tx Tx) error {
		var err error
		v, err = c.In(tx).Get(ctx, id)
		return err
	})
	return v, err
}

// Put creates or replaces v under cond and fills in its version fields. It
// reports whether the document was created. v's version fields are set even
// when the write fails; trust them only when Put returns nil.
func (c *Collection[T]) Put(ctx context.Context, v T, cond Condition) (created bool, err error) {
	err = c.backend.Update(ctx, func(tx Tx) error {
		created, err = c.In(tx).Put(ctx, v, cond)
		return err
	})
	if err == nil {
		Touch(c.bucket)
	}
	return created, err
}

// Delete removes a document under cond.
func (c *Collection[T]) Delete(ctx context.Context, id string, cond Condition) error {
	err := c.backend.Update(ctx, func(tx Tx) error { return c.In(tx).Delete(ctx, id, cond) })
	if err == nil {
		Touch(c.bucket)
	}
	return err
}

// List returns up to limit documents after the continuation token, and the
// token of the next page ("" on the last page).
func (c *Collection[T]) List(ctx context.Context, continuation string, limit int) (out []T, next string, err error) {
	err = ViewOne(ctx, c.backend, func(tx Tx) error {
		out, next, err = c.In(tx).List(ctx, continuation, limit)
		return err
	})
	return out, next, err
}

// ListBy lists the documents whose index value equals value, paged like List.
func (c *Collection[T]) ListBy(ctx context.Context, index Bucket, value string, continuation string, limit int) (out []T, next string, err error) {
	err = c.backend.View(ctx, func(tx Tx) error {
		out, next, err = c.In(tx).ListBy(ctx, index, value, continuation, limit)
		return err
	})
	return out, next, err
}

// Find is Get for a lookup in which absence is an answer: a missing
// document is the zero value and no error.
func (c *Collection[T]) Find(ctx context.Context, id string) (T, error) {
	v, err := c.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		var zero T
		return zero, nil
	}
	return v, err
}

// All reads every document, a page (one read transaction) at a time, so
// that no read holds the store long.
func (c *Collection[T]) All(ctx context.Context) ([]T, error) {
	return drain(func(next string) ([]T, string, error) { return c.List(ctx, next, drainPage) })
}

// AllBy reads every document whose index value equals value, a page at a
// time like All.
func (c *Collection[T]) AllBy(ctx context.Context, index Bucket, value string) ([]T, error) {
	return drain(func(next string) ([]T, string, error) { return c.ListBy(ctx, index, value, next, drainPage) })
}

// drainPage is the page size of All and AllBy.
const drainPage = 1000

// drain reads pages until the last.
func drain[T any](page func(next string) ([]T, string, error)) ([]T, error) {
	var out []T
	next := ""
	for {
		items, n, err := page(next)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if n == "" {
			return out, nil
		}
		next = n
	}
}

// In binds the collection to a transaction, so that several writes (of
// several collections) commit together.
func (c *Collection[T]) In(tx Tx) TxCollection[T] { return TxCollection[T]{c: c, tx: tx} }

// TxCollection is a collection inside one transaction.
type TxCollection[T Document] struct {
	c  *Collection[T]
	tx Tx
	// lock: Get and GetIfChanged lock what they read (0 no, 1 shared, 2
	// exclusive; Locked).
	lock int
}

// Locked returns the collection whose Get and GetIfChanged also lock the
// document until the transaction ends (store.Locker; conditional.go):
// shared, or exclusive when exclusive is set.
func (t TxCollection[T]) Locked(exclusive bool) TxCollection[T] {
	t.lock = 1
	if exclusive {
		t.lock = 2
	}
	return t
}

func (t TxCollection[T]) get(ctx context.Context, key string) (Item, error) {
	if t.lock > 0 {
		return GetLocked(ctx, t.tx, t.c.bucket, key, t.lock == 2)
	}
	return t.tx.Get(ctx, t.c.bucket, key)
}

// Get reads one document.
func (t TxCollection[T]) Get(ctx context.Context, id string) (T, error) {
	var zero T
	it, err := t.get(ctx, enrollment.Key(id))
	if err != nil {
		return zero, err
	}
	return t.decode(it)
}

// GetIfChanged reads the document like Get unless its stored ETag is
// etag: then it returns changed false and decodes (and unseals) nothing,
// for a caller that already holds that version and only needs to know
// whether it still stands. The read is a read of the key all the same,
// for the backend's conflict detection.
func (t TxCollection[T]) GetIfChanged(ctx context.Context, id, etag string) (v T, changed bool, err error) {
	it, err := t.get(ctx, enrollment.Key(id))
	if err != nil {
		return v, false, err
	}
	if etag != "" && it.ETag == etag {
		return v, false, nil
	}
	v, err = t.decode(it)
	return v, err == nil, err
}

func (t TxCollection[T]) decode(it Item) (T, error) {
	v := t.c.newT()
	if err := json.Unmarshal(it.Value, v); err != nil {
		var zero T
		return zero, fmt.Errorf("store: decode %s/%s: %w", t.c.bucket, it.Key, err)
	}
	if _, err := t.c.openSecrets(it.Key, v); err != nil {
		var zero T
		return zero, err
	}
	v.Version().ETag = it.ETag
	return v, nil
}

// Put creates or replaces v under cond; see Collection.Put.
func (t TxCollection[T]) Put(ctx context.Context, v T, cond Condition) (created bool, err error) {
	key := v.StoreKey()
	if key == "" {
		return false, fmt.Errorf("store: %s: empty key", t.c.bucket)
	}
	// A create needs no read first: it fails when the key is taken, and a
	// new document has no old index entries.
	var old T
	exists := false
	if !cond.IfNoneMatch {
		old, err = t.Get(ctx, key)
		exists = err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
	}
	// Check the condition here too, so that index entries are not touched
	// when it fails; the backend checks it again atomically.
	if err := checkCondition(exists, oldETag(old, exists), cond); err != nil {
		return false, fmt.Errorf("%s %q: %w", t.c.bucket, key, err)
	}
	ver := v.Version()
	now := t.c.now().UTC()
	ver.LastUpdatedDateTimeUTC = &now
	if exists && old.Version().CreatedDateTimeUTC != nil {
		ver.CreatedDateTimeUTC = old.Version().CreatedDateTimeUTC
	} else {
		ver.CreatedDateTimeUTC = &now
	}
	ver.ETag = ""
	restore, err := t.c.sealSecrets(key, v)
	if err != nil {
		return false, err
	}
	b, err := json.Marshal(v)
	restore()
	if err != nil {
		return false, fmt.Errorf("store: encode %s/%s: %w", t.c.bucket, key, err)
	}
	etag, err := t.tx.Put(ctx, t.c.bucket, key, b, cond)
	if err != nil {
		return false, err
	}
	ver.ETag = etag
	for _, ix := range t.c.indexes {
		var was []string
		if exists {
			was = ix.Of(old)
		}
		if err := t.reindex(ctx, ix.Bucket, key, was, ix.Of(v)); err != nil {
			return false, err
		}
	}
	return !exists, nil
}

func oldETag[T Document](old T, exists bool) string {
	if !exists {
		return ""
	}
	return old.Version().ETag
}

func (t TxCollection[T]) reindex(ctx context.Context, b Bucket, key string, was, is []string) error {
	keep := map[string]bool{}
	for _, v := range is {
		if v != "" {
			keep[enrollment.Key(v)] = true
		}
	}
	for _, v := range was {
		v = enrollment.Key(v)
		if v == "" {
			continue
		}
		if keep[v] {
			delete(keep, v) // already indexed
			continue
		}
		if err := t.tx.Delete(ctx, b, v+indexSep+key, Condition{}); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	for v := range keep {
		if _, err := t.tx.Put(ctx, b, v+indexSep+key, nil, Condition{}); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes a document and its index entries.
func (t TxCollection[T]) Delete(ctx context.Context, id string, cond Condition) error {
	key := enrollment.Key(id)
	old, err := t.Get(ctx, key)
	if err != nil {
		return err
	}
	if err := t.tx.Delete(ctx, t.c.bucket, key, cond); err != nil {
		return err
	}
	for _, ix := range t.c.indexes {
		if err := t.reindex(ctx, ix.Bucket, key, ix.Of(old), nil); err != nil {
			return err
		}
	}
	return nil
}

// List pages through the collection in key order.
func (t TxCollection[T]) List(ctx context.Context, continuation string, limit int) ([]T, string, error) {
	after, err := decodeContinuation(continuation)
	if err != nil {
		return nil, "", err
	}
	items, err := t.tx.Scan(ctx, t.c.bucket, "", after, pageFetch(limit))
	if err != nil {
		return nil, "", err
	}
	items, next := page(items, limit)
	out := make([]T, 0, len(items))
	for _, it := range items {
		v, err := t.decode(it)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

// ListBy pages through the documents with one index value.
func (t TxCollection[T]) ListBy(ctx context.Context, index Bucket, value, continuation string, limit int) ([]T, string, error) {
	after, err := decodeContinuation(continuation)
	if err != nil {
		return nil, "", err
	}
	prefix := enrollment.Key(value) + indexSep
	if after != "" && !strings.HasPrefix(after, prefix) {
		return nil, "", ErrInvalidContinuation
	}
	items, err := t.tx.Scan(ctx, index, prefix, after, pageFetch(limit))
	if err != nil {
		return nil, "", err
	}
	items, next := page(items, limit)
	out := make([]T, 0, len(items))
	for _, it := range items {
		v, err := t.Get(ctx, strings.TrimPrefix(it.Key, prefix))
		if errors.Is(err, ErrNotFound) {
			continue // index entry without document: cannot happen inside one transaction, tolerate anyway
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

// pageFetch asks for one item more than the page, to know whether another
// page follows without answering an empty last page.
func pageFetch(limit int) int {
	if limit <= 0 {
		return 0
	}
	return limit + 1
}

func page(items []Item, limit int) ([]Item, string) {
	if limit <= 0 || len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, base64.RawURLEncoding.EncodeToString([]byte("k:" + items[len(items)-1].Key))
}

func decodeContinuation(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "k:") {
		return "", ErrInvalidContinuation
	}
	return string(b[2:]), nil
}

// checkCondition is the one definition of Condition semantics; backends use
// it too.
func checkCondition(exists bool, etag string, cond Condition) error {
	switch {
	case cond.IfNoneMatch && exists:
		return ErrConflict
	case cond.IfMatch == "":
		return nil
	case !exists:
		return ErrNotFound
	case cond.IfMatch != "*" && cond.IfMatch != etag:
		return ErrPreconditionFailed
	}
	return nil
}

// CheckCondition reports whether a write under cond may proceed given the
// current state of the key. Backends call it inside their transaction.
func CheckCondition(exists bool, etag string, cond Condition) error {
	return checkCondition(exists, etag, cond)
}
