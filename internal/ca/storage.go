package ca

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
)

// Storage keeps the CA state, an opaque blob whose secrets are already
// encrypted. New only creates it, atomically, so replicas need no
// coordination beyond that; Rotate rewrites it through Swapper, and
// running CAs follow (CA.Watch).
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

// Swap replaces the state with next if it is still old, in one
// transaction that also runs also (the rotation's audit events); otherwise
// it returns ErrStateChanged and changes nothing.
func (s backendStorage) Swap(ctx context.Context, old, next []byte, also func(store.Tx) error) error {
	err := s.b.Update(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, StateBucket, StateKey)
		if err != nil {
			return err
		}
		if !bytes.Equal(it.Value, old) {
			return ErrStateChanged
		}
		if _, err := tx.Put(ctx, StateBucket, StateKey, next, store.Condition{IfMatch: it.ETag}); err != nil {
			return err
		}
		return also(tx)
	})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", ErrStateChanged, err)
	}
	if err != nil && !errors.Is(err, ErrStateChanged) {
		return fmt.Errorf("ca: swap state: %w", err)
	}
	return err
}
