package provisioning_test

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/zdps/zdps/internal/store"
)

var errInjected = errors.New("injected write failure")

// failingBackend fails every Update while fail is set, after fn ran (so
// the certificate was already issued): the commit is lost.
type failingBackend struct {
	store.Backend
	fail atomic.Bool
}

func (f *failingBackend) Update(ctx context.Context, fn func(store.Tx) error) error {
	if !f.fail.Load() {
		return f.Backend.Update(ctx, fn)
	}
	return f.Backend.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errInjected
	})
}
