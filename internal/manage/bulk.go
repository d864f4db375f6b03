package manage

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// bulkChunk is how many items of a bulk call share one transaction: few
// enough that a large call never becomes one giant transaction
// (docs/architecture.md#storage-model), many enough that a 1,000-item
// call costs ten durable commits, not a thousand.
const bulkChunk = 100

// errNoETag is the item error of an updateIfMatchETag item without etag.
var errNoETag = &enrollment.ValidationError{Field: "etag", Reason: "is required in updateIfMatchETag mode"}

// BulkResult is the outcome of one item of a bulk call.
type BulkResult struct {
	ID string
	// Err is the item's own failure (invalid, exists, missing, ETag
	// mismatch) or the failure of the chunk it was written in; nil when it
	// was written.
	Err error
}

// bulkItem is one item of a bulk call on its way to the store.
type bulkItem[T store.Document] struct {
	v        T
	id       string
	cond     store.Condition
	req, gen keyPair
	err      error
}

// Bulk runs a bulk call (mode is one of enrollment.Bulk*): every item is
// validated and written on its own, so a bad item is reported in its
// result and does not stop the others (DPS semantics). Items are written
// bulkChunk to a transaction; a chunk that fails for the store fails each
// of its items. Items written disabled or deleted revoke their
// certificates as Put and Delete do.
func Bulk[T store.Document](ctx context.Context, s *Service, k *Kind[T], mode string, vs []T) []BulkResult {
	items := prepareBulkItems(ctx, s, k, mode, vs)
	var jobs []revocation.Job
	for start := 0; start < len(items); start += bulkChunk {
		chunk := items[start:min(start+bulkChunk, len(items))]
		js, err := runBulkChunk(ctx, s, k, mode, chunk)
		jobs = append(jobs, js...)
		if err != nil {
			s.log.ErrorContext(ctx, "bulk chunk failed", "error", err)
			for i := range chunk {
				if chunk[i].err == nil {
					chunk[i].err = err
				}
			}
		}
	}
	s.finishRevocation(ctx, jobs)
	out := make([]BulkResult, len(items))
	for i, it := range items {
		out[i] = BulkResult{ID: it.id, Err: it.err}
	}
	return out
}

// prepareBulkItems does the per-item work that needs no transaction:
// validation, the write condition of the mode, key generation.
func prepareBulkItems[T store.Document](ctx context.Context, s *Service, k *Kind[T], mode string, vs []T) []bulkItem[T] {
	items := make([]bulkItem[T], len(vs))
	for i, v := range vs {
		it := &items[i]
		it.v, it.id = v, k.id(v)
		// The decoder keeps only an item's etag; the store owns the rest.
		etag := v.Version().ETag
		*v.Version() = enrollment.Versioned{}
		switch mode {
		case enrollment.BulkDelete:
			it.err = k.validateID(it.id)
			it.cond = store.Condition{IfMatch: etag}
			continue
		case enrollment.BulkCreate:
			it.cond = store.Condition{IfNoneMatch: true}
		case enrollment.BulkUpdateIfMatchETag:
			if etag == "" {
				it.err = errNoETag
				continue
			}
			it.cond = store.Condition{IfMatch: etag}
		case enrollment.BulkUpdate:
		default:
			it.err = &enrollment.ValidationError{Field: "mode", Reason: fmt.Sprintf("unknown bulk mode %q", mode)}
			continue
		}
		if it.err = k.validate(v); it.err != nil {
			continue
		}
		if it.err = s.checkCAReferences(ctx, k.att(v)); it.err != nil {
			continue
		}
		if it.err = s.checkWrite(ctx, v); it.err != nil {
			continue
		}
		it.req = attKeys(k.att(v))
		if err := k.generate(v, s.rand); err != nil {
			it.err = fmt.Errorf("generate keys: %w", err)
			continue
		}
		it.gen = attKeys(k.att(v))
	}
	return items
}

// runBulkChunk writes the items of one chunk in one transaction. An item's
// own failure (exists, missing, ETag mismatch) is recorded on the item and
// the others go on; it writes nothing, since the store checks the
// condition before writing. Any other error aborts the chunk. It returns
// the revocation jobs the chunk stored.
func runBulkChunk[T store.Document](ctx context.Context, s *Service, k *Kind[T], mode string, chunk []bulkItem[T]) (jobs []revocation.Job, err error) {
	var errs []error
	err = s.st.Backend.Update(ctx, func(tx store.Tx) error {
		// Fresh on every run: the backend may run this function again.
		errs = make([]error, len(chunk))
		jobs = nil
		c := k.collection(s.st).In(tx)
		for i := range chunk {
			it := &chunk[i]
			if it.err != nil {
				continue
			}
			var err error
			if mode == enrollment.BulkDelete {
				err = c.Delete(ctx, it.id, it.cond)
			} else {
				var was keyPair
				old, gerr := c.Get(ctx, it.id)
				switch {
				case gerr == nil:
					was = attKeys(k.att(old))
				case !isNotFound(gerr):
					return gerr
				}
				setAttKeys(k.att(it.v), merge(it.req, was, it.gen))
				_, err = c.Put(ctx, it.v, it.cond)
				err = preconditionOnMissing(err, it.cond)
			}
			if err != nil && !IsItemError(err) {
				return err
			}
			errs[i] = err
			if err == nil {
				var v T
				if mode != enrollment.BulkDelete {
					v = it.v
				}
				js, err := k.revoke(ctx, s, tx, it.id, v)
				if err != nil {
					return err
				}
				jobs = append(jobs, js...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range chunk {
		if chunk[i].err == nil && errs[i] != nil {
			chunk[i].err = errs[i]
		}
	}
	return jobs, nil
}

// IsItemError reports whether a bulk item's error is about that item (it
// exists, is missing, or its ETag does not match) rather than the store.
func IsItemError(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrPreconditionFailed)
}
