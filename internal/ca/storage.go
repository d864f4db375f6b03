package ca

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
)

// Storage keeps the CA state, an opaque blob whose secrets are already
// encrypted. It is create-once: the CA never rewrites it, so replicas need no
// coordination beyond an atomic create.
type Storage interface {
	// Load returns the stored state, or an error wrapping ErrNoState when
	// there is none.
	Load(ctx context.Context) ([]byte, error)
	// Create stores state only if none exists, atomically; otherwise it
	// returns an error wrapping ErrStateExists and changes nothing.
	Create(ctx context.Context, state []byte) error
}

// Where BackendStorage keeps the state.
const (
	StateBucket store.Bucket = "ca"
	StateKey                 = "state"
)

// BackendStorage keeps the CA state in a store.Backend under bucket "ca", key
// "state"; Create is a put with IfNoneMatch, so a shared backend gives every
// replica the same CA.
func BackendStorage(b store.Backend) Storage { return backendStorage{b: b} }

type backendStorage struct{ b store.Backend }

func (s backendStorage) Load(ctx context.Context) ([]byte, error) {
	var out []byte
	err := s.b.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, StateBucket, StateKey)
		if err != nil {
			return err
		}
		// The backend may reuse its buffer after the transaction.
		out = bytes.Clone(it.Value)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNoState, err)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: load state: %w", err)
	}
	return out, nil
}

func (s backendStorage) Create(ctx context.Context, state []byte) error {
	err := s.b.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, StateBucket, StateKey, state, store.Condition{IfNoneMatch: true})
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", ErrStateExists, err)
	}
	if err != nil {
		return fmt.Errorf("ca: create state: %w", err)
	}
	return nil
}
