package gateway

import (
	"context"
	"fmt"

	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/store"
)

// ErrReadOnly: an enrollment or group write at a gateway. It wraps
// manage.ErrBadRequest, which the service API answers 400 with this
// message.
var ErrReadOnly = fmt.Errorf("%w: this zdps is an edge gateway: enrollments and groups are written at the central zdps, whose state wins; they reach this gateway through its change feed", manage.ErrBadRequest)

// Documents are the enrollment or group use cases the service API is
// handed (internal/api.Documents).
type Documents[T any] interface {
	Get(ctx context.Context, id string) (T, error)
	List(ctx context.Context, cont string, limit int) ([]T, string, error)
	Put(ctx context.Context, v T, cond store.Condition) (created bool, err error)
	Delete(ctx context.Context, id, ifMatch string) error
	Bulk(ctx context.Context, mode string, vs []T) []manage.BulkResult
}

// ReadOnly serves reads of d and refuses every write with ErrReadOnly.
func ReadOnly[T any](d Documents[T]) Documents[T] { return readOnly[T]{d} }

type readOnly[T any] struct{ d Documents[T] }

func (r readOnly[T]) Get(ctx context.Context, id string) (T, error) { return r.d.Get(ctx, id) }

func (r readOnly[T]) List(ctx context.Context, cont string, limit int) ([]T, string, error) {
	return r.d.List(ctx, cont, limit)
}

func (r readOnly[T]) Put(context.Context, T, store.Condition) (bool, error) {
	return false, ErrReadOnly
}

func (r readOnly[T]) Delete(context.Context, string, string) error { return ErrReadOnly }

func (r readOnly[T]) Bulk(_ context.Context, _ string, vs []T) []manage.BulkResult {
	out := make([]manage.BulkResult, len(vs))
	for i := range vs {
		out[i] = manage.BulkResult{Err: ErrReadOnly}
	}
	return out
}
