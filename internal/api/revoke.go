package api

import (
	"context"
	"math/big"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/revocation"
)

// revoker is the API's part of certificate revocation and the CRL.
type revoker struct {
	rev *revocation.Revocations
	// crl is nil when no CA is configured.
	crl *revocation.CRLPublisher
}

// newRevocation builds the revocation part of the API from its config.
func newRevocation(cfg Config) (*revoker, error) {
	rev, err := revocation.NewRevocations(cfg.Store, revocation.RevocationConfig{Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	rv := &revoker{rev: rev}
	if cfg.CA != nil {
		validity := cfg.CRLValidity
		if validity == 0 {
			validity = ca.DefaultCRLValidity
		}
		if rv.crl, err = revocation.NewCRLPublisher(rev, caSigner{cfg.CA}, validity); err != nil {
			return nil, err
		}
	}
	return rv, nil
}

// Revocations is the revocation service the API revokes through; the
// renewal path asks it IsRevoked.
func (a *API) Revocations() *revocation.Revocations { return a.rv.rev }

// Run does the API's background work until ctx ends: it finishes the
// revocation sweeps of groups too large to sweep within their request,
// including those a crashed process left. `zdps serve` runs it once per
// process. It returns ctx's error.
func (a *API) Run(ctx context.Context) error { return a.rv.rev.Run(ctx, 0) }

// caSigner adapts the CA to the signer the CRL publisher asks for.
type caSigner struct{ ca *ca.CA }

func (s caSigner) CRL(entries []revocation.Entry, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	revoked := make([]ca.Revoked, len(entries))
	for i, e := range entries {
		revoked[i] = ca.Revoked{Serial: e.Serial, RevokedAt: e.RevokedAt, Reason: e.Reason}
	}
	return s.ca.CRL(revoked, number, nextUpdate)
}
