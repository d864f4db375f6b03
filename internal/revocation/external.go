package revocation

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ErrSerialTaken: a certificate pushed by an edge gateway has the serial
// of a stored certificate of another registration.
var ErrSerialTaken = errors.New("revocation: serial already stored for another registration")

// StoreCertificateTx stores, inside tx, a certificate this zdps did not
// sign itself (one an edge gateway issued under its delegated CA), so
// that revocation covers it like its own: deleting the record or
// disabling the enrollment revokes it. A certificate already stored for
// the same registration is left as it is (a push repeated); RevokedAt set
// stores it revoked and marks the revoked set changed.
func (r *Revocations) StoreCertificateTx(ctx context.Context, tx store.Tx, c *enrollment.Certificate) error {
	certs := r.certs.In(tx)
	old, err := certs.Get(ctx, c.Serial)
	switch {
	case err == nil:
		if enrollment.Key(old.RegistrationID) != enrollment.Key(c.RegistrationID) {
			return fmt.Errorf("%w: %s", ErrSerialTaken, c.Serial)
		}
		if old.Revoked() || c.RevokedAt == nil {
			return nil
		}
		old.RevokedAt, old.RevocationReason = c.RevokedAt, c.RevocationReason
		c = old
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if _, err := certs.Put(ctx, c, store.Condition{}); err != nil {
		return fmt.Errorf("revocation: store certificate %s: %w", c.Serial, err)
	}
	if c.RevokedAt != nil {
		return bumpGeneration(ctx, tx)
	}
	return nil
}

// StoreRevokedTx stores, inside tx, a revoked certificate this zdps signed
// but did not issue to a device (the delegated CA of an edge gateway that
// lost its right), so that the CRL lists it; it marks the revoked set
// changed. A certificate stored before keeps its first revocation.
func StoreRevokedTx(ctx context.Context, tx store.Tx, c *enrollment.Certificate) error {
	if c.RevokedAt == nil {
		return errors.New("revocation: StoreRevokedTx needs RevokedAt")
	}
	certs := Certificates(nil, nil).In(tx)
	if old, err := certs.Get(ctx, c.Serial); err == nil && old.Revoked() {
		return nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := certs.Put(ctx, c, store.Condition{}); err != nil {
		return fmt.Errorf("revocation: store revoked certificate %s: %w", c.Serial, err)
	}
	return bumpGeneration(ctx, tx)
}
