package api

import (
	"context"
	"math/big"
	"net/http"
	"time"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/pkg/ca"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
)

// inlineSweepPages bounds the group sweep a request runs before it
// answers: at the default page size, 2,000 devices. A larger group is
// finished by Run in the background (docs/architecture.md#storage-model: no request holds the
// store for long, and a group may have millions of devices).
const inlineSweepPages = 20

// revoker is the API's part of certificate revocation and the CRL.
type revoker struct {
	// enabled: revoke on deletion and disabling (Config.KeepCertificatesOnDisable unset).
	enabled bool
	rev     *revocation.Revocations
	// crl is nil when no CA is configured.
	crl *revocation.CRLPublisher
}

// newRevocation builds the revocation part of the API from its config.
func newRevocation(cfg Config) (*revoker, error) {
	rev, err := revocation.NewRevocations(cfg.Store, revocation.RevocationConfig{Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	rv := &revoker{enabled: !cfg.KeepCertificatesOnDisable, rev: rev}
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

// revokeRegistrationTx revokes a registration's certificates in the
// transaction of the change that causes it, when revocation is enabled.
func (a *API) revokeRegistrationTx(ctx context.Context, tx store.Tx, id string, reason int) error {
	if !a.rv.enabled {
		return nil
	}
	n, err := a.rv.rev.RevokeRegistrationTx(ctx, tx, id, reason)
	if err == nil && n > 0 {
		a.log.InfoContext(ctx, "certificates revoked", "registration_id", id, "count", n, "reason", reason)
	}
	return err
}

// deleteRegistrationRevoking deletes a registration record and revokes
// the certificates issued to it, in one transaction.
func (a *API) deleteRegistrationRevoking(ctx context.Context, id string, cond store.Condition) error {
	return a.store.Backend.Update(ctx, func(tx store.Tx) error {
		if err := a.store.Registrations.In(tx).Delete(ctx, id, cond); err != nil {
			return err
		}
		return a.revokeRegistrationTx(ctx, tx, id, revocation.ReasonCessationOfOperation)
	})
}

// reasonFor is the CRL reason of a change: deleted (v is nil) or disabled.
func reasonFor(deleted bool) int {
	if deleted {
		return revocation.ReasonCessationOfOperation
	}
	return revocation.ReasonPrivilegeWithdrawn
}

// revokeEnrollmentTx stores the job revoking the certificates of an
// individual enrollment's registration when the enrollment is deleted (e
// is nil) or written disabled; the request runs it before it answers
// (finishRevocation). Writing it disabled again revokes nothing new, but
// the job is cheap and idempotent.
func revokeEnrollmentTx(ctx context.Context, a *API, tx store.Tx, id string, e *enrollment.IndividualEnrollment) ([]revocation.Job, error) {
	if !a.rv.enabled || (e != nil && e.ProvisioningStatus != enrollment.StatusDisabled) {
		return nil, nil
	}
	j, err := a.rv.rev.StartRegistrationRevocationTx(ctx, tx, id, reasonFor(e == nil))
	return []revocation.Job{j}, err
}

// revokeGroupTx stores the sweep revoking the certificates of every
// registration of a group that is deleted (g is nil) or written disabled.
func revokeGroupTx(ctx context.Context, a *API, tx store.Tx, id string, g *enrollment.EnrollmentGroup) ([]revocation.Job, error) {
	if !a.rv.enabled || (g != nil && g.ProvisioningStatus != enrollment.StatusDisabled) {
		return nil, nil
	}
	j, err := a.rv.rev.StartGroupSweepTx(ctx, tx, id, reasonFor(g == nil))
	return []revocation.Job{j}, err
}

// finishRevocation runs the revocation jobs a request stored, for a
// bounded number of pages, so that an enrollment's or a small group's
// certificates are revoked before the answer, and leaves the rest to Run.
// A failure here is logged, not answered: the change is committed and the
// jobs are stored, so Run completes them (and until then the devices they
// cover are refused).
func (a *API) finishRevocation(r *http.Request, jobs []revocation.Job) {
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	done, err := a.rv.rev.Finish(ctx, jobs, inlineSweepPages+len(jobs))
	if err != nil {
		a.log.WarnContext(ctx, "revocation not finished within the request; it continues in the background", "request_id", RequestID(r.Context()), "error", err)
	}
	if !done {
		a.rv.rev.Kick()
	}
}

// caSigner adapts the CA to the signer the CRL publisher asks for.
type caSigner struct{ ca *ca.CA }

func (s caSigner) CRL(entries []revocation.Entry, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	revoked := make([]ca.Revoked, len(entries))
	for i, e := range entries {
		revoked[i] = ca.Revoked{Serial: e.Serial, RevokedAt: e.RevokedAt, Reason: e.Reason}
	}
	return s.ca.CRL(revoked, number, nextUpdate)
}
