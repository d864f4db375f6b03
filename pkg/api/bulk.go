package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
)

// bulkChunk is how many items of a bulk call share one transaction: few
// enough that a large call never becomes one giant transaction
// (docs/architecture.md#storage-model), many enough that a 1,000-item
// call costs ten durable commits, not a thousand.
const bulkChunk = 100

// bulkFailure is one failed item of a bulk call, as DPS reports it.
type bulkFailure struct {
	id      string
	code    int
	message string
}

// bulkItem is one item of a bulk call on its way to the store.
type bulkItem[T store.Document] struct {
	v        T
	id       string
	cond     store.Condition
	req, gen keyPair
	err      error
}

// bulkDocs runs a bulk call: every item is validated and written on its
// own, so a bad item is reported in the answer and does not stop the
// others (DPS semantics). The call itself fails only when its body is not
// a bulk request at all or has too many items; then nothing is written.
func bulkDocs[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := requireBody(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		mode, vs, err := k.decodeBulk(b)
		if err != nil {
			a.writeError(w, r, badRequest(err))
			return
		}
		if len(vs) > a.cfg.MaxBulkItems {
			a.writeError(w, r, fmt.Errorf("%w: %d items in one bulk call; this server accepts at most %d (split the request)", errBadRequest, len(vs), a.cfg.MaxBulkItems))
			return
		}
		items := prepareBulkItems(r.Context(), a, k, mode, vs)
		var jobs []revocation.Job
		for start := 0; start < len(items); start += bulkChunk {
			chunk := items[start:min(start+bulkChunk, len(items))]
			js, err := runBulkChunk(r.Context(), a, k, mode, chunk)
			jobs = append(jobs, js...)
			if err != nil {
				a.log.ErrorContext(r.Context(), "bulk chunk failed", "request_id", RequestID(r.Context()), "error", err)
				for i := range chunk {
					if chunk[i].err == nil {
						chunk[i].err = err
					}
				}
			}
		}
		a.finishRevocation(r, jobs)
		var failures []bulkFailure
		for _, it := range items {
			if it.err == nil {
				a.audit(r, bulkAction(mode), k.resource, it.id)
				continue
			}
			_, code, msg := classify(it.err)
			failures = append(failures, bulkFailure{id: it.id, code: code, message: msg})
		}
		a.writeJSON(w, http.StatusOK, k.bulkResult(failures))
	}
}

// prepareBulkItems does the per-item work that needs no transaction:
// validation, the write condition of the mode, key generation.
func prepareBulkItems[T store.Document](ctx context.Context, a *API, k *enrollmentKind[T], mode string, vs []T) []bulkItem[T] {
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
			it.err = fmt.Errorf("%w: unknown bulk mode %q", errBadRequest, mode)
			continue
		}
		if it.err = k.validate(v); it.err != nil {
			continue
		}
		if it.err = a.checkCAReferences(ctx, k.att(v)); it.err != nil {
			continue
		}
		if it.err = a.checkWrite(ctx, v); it.err != nil {
			continue
		}
		it.req = attKeys(k.att(v))
		if err := k.generate(v, a.rand); err != nil {
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
// condition before writing. Any other error aborts the chunk.
//
// Each item written disabled or deleted revokes certificates in the same
// transaction (k.revoke) and returns the revocation jobs the chunk stored.
func runBulkChunk[T store.Document](ctx context.Context, a *API, k *enrollmentKind[T], mode string, chunk []bulkItem[T]) (jobs []revocation.Job, err error) {
	var errs []error
	err = a.store.Backend.Update(ctx, func(tx store.Tx) error {
		// Fresh on every run: the backend may run this function again.
		errs = make([]error, len(chunk))
		jobs = nil
		c := k.collection(a.store).In(tx)
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
			if err != nil && !isItemError(err) {
				return err
			}
			errs[i] = err
			if err == nil && k.revoke != nil {
				var v T
				if mode != enrollment.BulkDelete {
					v = it.v
				}
				js, err := k.revoke(ctx, a, tx, it.id, v)
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
			chunk[i].err = about(k.resource, chunk[i].id, errs[i])
		}
	}
	return jobs, nil
}

// isItemError reports whether err is about one item rather than the store.
func isItemError(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrPreconditionFailed)
}

func bulkAction(mode string) string {
	switch mode {
	case enrollment.BulkCreate:
		return "create"
	case enrollment.BulkDelete:
		return "delete"
	}
	return "update"
}
