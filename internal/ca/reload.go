package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/ctxtime"
	"github.com/zdps/zdps/internal/store"
)

// Swapper is the part of a Storage that rotation needs: replace the state
// only if it is still old, atomically, running also in the same
// transaction (the audit events of the change). BackendStorage has it.
type Swapper interface {
	Swap(ctx context.Context, old, new []byte, also func(store.Tx) error) error
}

// ErrStateChanged: the state changed under a rotation (another rotation
// won); nothing was written.
var ErrStateChanged = errors.New("ca: the stored state changed during the rotation; run it again")

// Reload loads the stored state and, when it changed (a rotation), switches
// the CA to it. Certificates being signed finish with the generation they
// started with.
func (c *CA) Reload(ctx context.Context) (bool, error) {
	blob, err := c.cfg.Storage.Load(ctx)
	if err != nil {
		return false, err
	}
	cur := c.cur.Load()
	if bytes.Equal(blob, cur.Blob) {
		return false, nil
	}
	z, err := castate.NewSealer(c.cfg.KEK, c.cfg.Rand)
	if err != nil {
		return false, err
	}
	l, err := castate.Decode(ctx, z, blob, c.cfg.KMS)
	if err != nil {
		return false, err
	}
	if !l.Root.Equal(cur.Root) && !l.TrustsOldRoot(cur.Root) {
		return false, fmt.Errorf("%w: the stored root changed without a root rotation; restart to take a new root", ErrCorruptState)
	}
	c.cur.Store(newGen(l))
	c.log.Info("ca reloaded", "generation", l.Generation, "intermediate_serial", castate.SerialOf(l.Inter.Raw), "previous", len(l.Previous))
	return true, nil
}

// Watch reloads the CA every interval until ctx ends, calling changed after
// each switch (to rewrite the bundle file). Errors are logged and retried:
// the CA keeps signing with what it has.
func (c *CA) Watch(ctx context.Context, interval time.Duration, changed func()) {
	ctxtime.Every(ctx, interval, func() {
		ok, err := c.Reload(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("ca reload failed", "err", err)
			}
			return
		}
		if ok && changed != nil {
			changed()
		}
	})
}

// Generation is the number of rotations of the loaded state.
func (c *CA) Generation() int { return c.cur.Load().Generation }

// Previous returns the rotated-out intermediates still in the bundle, oldest
// first, and when each leaves it.
func (c *CA) Previous() []PreviousIntermediate {
	g := c.cur.Load()
	out := make([]PreviousIntermediate, 0, len(g.Previous))
	for _, p := range g.Previous {
		out = append(out, PreviousIntermediate{Certificate: p.Inter, RotatedAt: p.RotatedAt, KeepUntil: p.KeepUntil, CanSignCRL: p.Signer != nil})
	}
	return out
}

// Intermediates is the issuing intermediate then the rotated-out ones still
// in their overlap: what issued a certificate a device may present.
func (c *CA) Intermediates() []*x509.Certificate {
	g := c.cur.Load()
	out := []*x509.Certificate{g.Inter}
	// A delegated CA's leaves chain through central's intermediate too.
	out = append(out, g.Above...)
	for _, p := range g.Previous {
		out = append(out, p.Inter)
	}
	return out
}

// PreviousIntermediate is a rotated-out intermediate during its overlap.
type PreviousIntermediate struct {
	Certificate *x509.Certificate
	RotatedAt   time.Time
	KeepUntil   time.Time
	// CanSignCRL: its key opened here (sealed, or in the KMS given).
	CanSignCRL bool
}

// PreviousRoot is a root rotated out, still trusted until KeepUntil.
type PreviousRoot struct {
	Certificate *x509.Certificate
	KeepUntil   time.Time
}

// PreviousRoots returns the roots rotated out during their overlap.
func (c *CA) PreviousRoots() []PreviousRoot {
	g := c.cur.Load()
	out := make([]PreviousRoot, 0, len(g.OldRoots))
	for i, r := range g.OldRoots {
		out = append(out, PreviousRoot{Certificate: r, KeepUntil: g.RootsKept[i].KeepUntil})
	}
	return out
}

// Cross returns the intermediates issued again by a previous root, during
// its overlap.
func (c *CA) Cross() []*x509.Certificate { return c.cur.Load().Cross }
