package revocation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/sweep"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Buckets of the issued certificates.
const (
	// BucketCertificates holds enrollment.Certificate by serial.
	BucketCertificates store.Bucket = "certificates"
	// IndexCertificatesByRegistration indexes certificates by registration ID.
	IndexCertificatesByRegistration store.Bucket = "certificates-by-registration"
	// IndexCertificatesRevoked indexes the revoked certificates under the
	// single value revokedIndexValue, so that the CRL pages through the
	// revoked ones without reading every certificate ever issued.
	IndexCertificatesRevoked store.Bucket = "certificates-revoked"
)

// PruneBatch is how many certificate records one prune transaction
// deletes at most.
const PruneBatch = 500

// Certificates is the collection of issued certificates on b, for anyone
// who needs to read or revoke them (the service API, the CRL). now is the
// clock (time.Now when nil).
func Certificates(b store.Backend, now func() time.Time) *store.Collection[*enrollment.Certificate] {
	if now == nil {
		now = time.Now
	}
	return store.NewCollection(b, BucketCertificates, now, func() *enrollment.Certificate { return new(enrollment.Certificate) },
		store.Index[*enrollment.Certificate]{Bucket: IndexCertificatesByRegistration, Of: func(c *enrollment.Certificate) []string { return []string{c.RegistrationID} }},
		store.Index[*enrollment.Certificate]{Bucket: IndexCertificatesRevoked, Of: revokedIndex},
	)
}

// CertificatePruner deletes the records of issued certificates that
// expired more than Keep ago, revoked or not: an expired certificate
// authenticates to no hub and renews nothing (the chain no longer
// verifies), so its record only serves the CRL, which lists a revoked one
// until one CRL validity after its NotAfter (onCRL). Keep must therefore be
// at least the CRL validity. A certificate that has not expired is never
// deleted, and neither is one without a NotAfter.
type CertificatePruner struct {
	backend store.Backend
	certs   *store.Collection[*enrollment.Certificate]
	keep    time.Duration
}

// NewCertificatePruner prunes the certificates on b, keeping each for keep
// after its NotAfter (pass the CRL validity).
func NewCertificatePruner(b store.Backend, keep time.Duration) (*CertificatePruner, error) {
	if b == nil {
		return nil, errors.New("revocation: certificate pruner: Backend is required")
	}
	if keep < 0 {
		return nil, fmt.Errorf("revocation: certificate pruner: negative retention %v", keep)
	}
	return &CertificatePruner{backend: b, certs: Certificates(b, nil), keep: keep}, nil
}

// PruneExpired deletes the certificates whose NotAfter plus the retention
// is not after now, with their index entries (the registration's and the
// revoked set's), PruneBatch per transaction, and returns how many it
// deleted. Safe on several replicas at once.
func (p *CertificatePruner) PruneExpired(ctx context.Context, now time.Time) (int, error) {
	n, err := sweep.Documents(ctx, p.backend, p.certs, BucketCertificates, PruneBatch,
		func(c *enrollment.Certificate) bool { return p.expired(c, now) }, nil)
	if err != nil {
		return n, fmt.Errorf("revocation: prune certificates: %w", err)
	}
	return n, nil
}

func (p *CertificatePruner) expired(c *enrollment.Certificate, now time.Time) bool {
	return !c.NotAfter.IsZero() && !now.Before(c.NotAfter.Add(p.keep))
}

// CountRevoked is how many revoked certificates are on record (those the
// CRL lists, until they are pruned), read from the revoked index.
func CountRevoked(ctx context.Context, b store.Backend) (int, error) {
	return Certificates(b, nil).CountBy(ctx, IndexCertificatesRevoked, revokedIndexValue)
}
