package revocation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Entry is one revoked certificate as a CRL lists it.
type Entry struct {
	// Serial in hex, as enrollment.Certificate stores it.
	Serial    string
	RevokedAt time.Time
	// Reason is the RFC 5280 CRLReason code.
	Reason int
}

// CRLSigner signs a CRL listing entries, with the CRL number and a
// nextUpdate that far ahead: the CA, behind an adapter of the caller's
// (the package needs no CA of its own).
type CRLSigner interface {
	CRL(entries []Entry, number *big.Int, nextUpdate time.Duration) ([]byte, error)
}

// CRLPublisher answers the current CRL. It signs a new one only when the
// revoked set changed (the stored generation moved) or the published one
// has used three quarters of its validity, and shares what it signed
// through the store, so that every replica serves the same CRL and the
// CRL number never goes backwards: a new number is published with a
// compare-and-swap on the previous one.
type CRLPublisher struct {
	rev      *Revocations
	signer   CRLSigner
	validity time.Duration

	// mu serialises signing in this process (many requests arriving when
	// the CRL turns stale sign once) and guards the cached CRL.
	mu        sync.Mutex
	number    int64
	der       []byte
	nextWrite time.Time
}

// NewCRLPublisher publishes CRLs of rev's revoked certificates signed by
// signer, each valid for validity.
func NewCRLPublisher(rev *Revocations, signer CRLSigner, validity time.Duration) (*CRLPublisher, error) {
	if rev == nil || signer == nil {
		return nil, errors.New("revocation: CRL publisher: Revocations and signer are required")
	}
	if validity <= 0 {
		return nil, errors.New("revocation: CRL publisher: validity must be positive")
	}
	return &CRLPublisher{rev: rev, signer: signer, validity: validity}, nil
}

// errPublishedMeanwhile: another replica (or request) published a CRL
// between our read and our write.
var errPublishedMeanwhile = errors.New("CRL published meanwhile")

// CRL returns the current DER CRL. Each call reads the small revocation
// state record; the CRL itself comes from memory when nothing changed.
func (p *CRLPublisher) CRL(ctx context.Context) ([]byte, error) {
	for range 5 {
		st, err := p.state(ctx)
		if err != nil {
			return nil, err
		}
		if p.fresh(st) {
			if der, ok := p.cached(st.Number); ok {
				return der, nil
			}
			der, err := p.load(ctx, st.Number)
			if err == nil {
				return der, nil
			}
			if !errors.Is(err, errPublishedMeanwhile) {
				return nil, err
			}
			continue
		}
		der, err := p.publish(ctx, st)
		if errors.Is(err, errPublishedMeanwhile) {
			continue
		}
		return der, err
	}
	return nil, errors.New("revocation: CRL: the published CRL kept changing; try again")
}

// state reads the revocation state and whether any change marker is left.
func (p *CRLPublisher) state(ctx context.Context) (st revocationState, err error) {
	st, _, err = p.stateAndMarkers(ctx, 1)
	return st, err
}

// stateAndMarkers reads the revocation state and up to limit change
// markers in one snapshot.
func (p *CRLPublisher) stateAndMarkers(ctx context.Context, limit int) (st revocationState, seen []string, err error) {
	err = p.rev.st.Backend.View(ctx, func(tx store.Tx) error {
		if st, err = readState(ctx, tx); err != nil {
			return err
		}
		seen, err = markers(ctx, tx, limit)
		st.changed = len(seen) > 0
		return err
	})
	return st, seen, err
}

// fresh reports whether the published CRL may still be served: it
// includes the current revoked set and has a quarter of its validity left.
func (p *CRLPublisher) fresh(st revocationState) bool {
	if st.Number == 0 || st.SignedGeneration != st.Generation || st.changed {
		return false
	}
	return p.rev.now().Before(st.NextUpdate.Add(-p.validity / 4))
}

func (p *CRLPublisher) cached(number int64) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.der != nil && p.number == number {
		return p.der, true
	}
	return nil, false
}

// load reads the published CRL of number from the store.
func (p *CRLPublisher) load(ctx context.Context, number int64) ([]byte, error) {
	var der []byte
	err := p.rev.st.Backend.View(ctx, func(tx store.Tx) error {
		st, err := readState(ctx, tx)
		if err != nil {
			return err
		}
		if st.Number != number {
			return errPublishedMeanwhile
		}
		it, err := tx.Get(ctx, BucketRevocation, crlKey)
		if err != nil {
			return fmt.Errorf("revocation: read CRL: %w", err)
		}
		der = bytes.Clone(it.Value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.keep(number, der)
	return der, nil
}

func (p *CRLPublisher) keep(number int64, der []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if number >= p.number {
		p.number, p.der = number, der
	}
}

// publish signs a CRL numbered after st's and stores it if st is still
// the published state.
func (p *CRLPublisher) publish(ctx context.Context, st revocationState) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Another request of this process may have published while we waited.
	// The markers read here are of revocations that committed before the
	// listing below starts, so the CRL covers them and may clear them.
	cur, seen, err := p.stateAndMarkers(ctx, maxMarkers)
	if err != nil {
		return nil, err
	} else if cur.Number != st.Number || cur.Generation != st.Generation {
		return nil, errPublishedMeanwhile
	}
	now := p.rev.now()
	var entries []Entry
	err = p.rev.Revoked(ctx, func(c *enrollment.Certificate) error {
		if !onCRL(c, now, p.validity) {
			return nil
		}
		entries = append(entries, Entry{Serial: c.Serial, RevokedAt: *c.RevokedAt, Reason: c.RevocationReason})
		return nil
	})
	if err != nil {
		return nil, err
	}
	number := st.Number + 1
	der, err := p.signer.CRL(entries, big.NewInt(number), p.validity)
	if err != nil {
		return nil, fmt.Errorf("revocation: sign CRL: %w", err)
	}
	err = p.rev.st.Backend.Update(ctx, func(tx store.Tx) error {
		cur, err := readState(ctx, tx)
		if err != nil {
			return err
		}
		if cur.Number != st.Number {
			return errPublishedMeanwhile
		}
		// The generation and markers read before listing: revocations that
		// committed while we listed may be missing; their markers stay, and
		// the next call re-signs.
		if err := clearMarkers(ctx, tx, seen); err != nil {
			return err
		}
		cur.Number, cur.SignedGeneration = number, st.Generation
		cur.ThisUpdate, cur.NextUpdate = now.UTC(), now.Add(p.validity).UTC()
		if _, err := tx.Put(ctx, BucketRevocation, crlKey, der, store.Condition{}); err != nil {
			return fmt.Errorf("revocation: store CRL: %w", err)
		}
		return writeState(ctx, tx, cur)
	})
	if err != nil {
		return nil, err
	}
	p.number, p.der = number, der
	p.rev.log.InfoContext(ctx, "CRL published", "crl_number", number, "revoked", len(entries))
	return der, nil
}

// onCRL reports whether a CRL signed at now, valid for validity, lists the
// revoked certificate c. An expired certificate authenticates nowhere, and
// RFC 5280 (section 3.3) lets a CRL drop it once it appeared on one CRL
// issued after it expired: it is listed until validity after its NotAfter,
// so every CRL signed in that span (one is, while anyone fetches the CRL:
// it is re-signed before a quarter of its validity is left) lists it.
// CertificatePruner keeps the record at least that long.
func onCRL(c *enrollment.Certificate, now time.Time, validity time.Duration) bool {
	return c.NotAfter.IsZero() || now.Before(c.NotAfter.Add(validity))
}
