package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// RFC 5280 CRLReason codes zdps records. A deleted enrollment or record
// means the device left service; a disabled one means its right to the
// certificate was withdrawn (it may be enabled again, but the certificate
// stays revoked: the device re-registers for a new one).
const (
	ReasonCessationOfOperation = 5
	ReasonPrivilegeWithdrawn   = 9
)

// Buckets of revocation state.
const (
	// BucketRevocation holds the revocation state record (the generation
	// of the revoked set and the published CRL's number) and the last
	// signed CRL.
	BucketRevocation store.Bucket = "revocation"
	// BucketRevocationSweeps holds the pending group sweeps by group ID.
	BucketRevocationSweeps store.Bucket = "revocation-sweeps"
	// BucketRevocationRegistrations holds the pending revocations of one
	// registration's certificates (an individual enrollment deleted or
	// disabled) by registration ID.
	BucketRevocationRegistrations store.Bucket = "revocation-registrations"
)

// DefaultRevocationPageSize is how many certificates or registrations one
// sweep transaction handles when RevocationConfig.PageSize is zero: small
// enough that revoking a group of millions of devices is many short
// transactions, never one that holds the store for minutes.
const DefaultRevocationPageSize = 100

// revokedIndexValue is the one value of IndexCertificatesRevoked.
const revokedIndexValue = "revoked"

func revokedIndex(c *enrollment.Certificate) []string {
	if c.RevokedAt == nil {
		return nil
	}
	return []string{revokedIndexValue}
}

// RevocationConfig configures NewRevocations.
type RevocationConfig struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives sweep progress and failures; discard when nil.
	Logger *slog.Logger
	// PageSize bounds the work of one transaction;
	// DefaultRevocationPageSize when zero.
	PageSize int
}

// Revocations revokes issued certificates. All its state is in the store
// (the certificate records, the revocation generation, pending sweeps), so
// any replica may revoke, sweep or publish, and a crash loses nothing: a
// sweep interrupted half-way is resumed from its stored cursor.
type Revocations struct {
	st       *store.Store
	certs    *store.Collection[*enrollment.Certificate]
	now      func() time.Time
	log      *slog.Logger
	pageSize int
	kick     chan struct{}
}

// NewRevocations builds the revocation service over st.
func NewRevocations(st *store.Store, cfg RevocationConfig) (*Revocations, error) {
	if st == nil || st.Backend == nil {
		return nil, errors.New("revocation: revocations: Store is required")
	}
	if cfg.PageSize < 0 {
		return nil, errors.New("revocation: revocations: negative PageSize")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultRevocationPageSize
	}
	return &Revocations{
		st:       st,
		certs:    Certificates(st.Backend, cfg.Now),
		now:      cfg.Now,
		log:      cfg.Logger,
		pageSize: cfg.PageSize,
		kick:     make(chan struct{}, 1),
	}, nil
}

// IsRevoked reports whether the certificate with this serial (hex, any
// case) has been revoked. The renewal path must call it before accepting
// an operational certificate as a credential. A serial zdps never stored
// answers an error wrapping store.ErrNotFound: the caller refuses it.
func (r *Revocations) IsRevoked(ctx context.Context, serial string) (bool, error) {
	c, err := r.certs.Get(ctx, serial)
	if err != nil {
		return false, err
	}
	return c.Revoked(), nil
}

// RevokeRegistrationTx revokes, inside tx, every certificate issued to the
// registration ID that is not revoked yet, and returns how many it
// revoked. Callers run it in the transaction of the change that causes it
// (the record's deletion, the enrollment's update), so that the change
// and the revocation commit together. Like every Update function it
// depends only on what it reads through tx.
func (r *Revocations) RevokeRegistrationTx(ctx context.Context, tx store.Tx, registrationID string, reason int) (int, error) {
	n, err := r.revokeRegistration(ctx, tx, registrationID, reason)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		if err := bumpGeneration(ctx, tx); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// revokeRegistration revokes every certificate of one registration. No
// cutoff by time: what the transaction sees was stored before it, and
// while a group sweep is pending no registration of the group is stored
// (Pending; the pipeline's revocation_guard.go).
func (r *Revocations) revokeRegistration(ctx context.Context, tx store.Tx, registrationID string, reason int) (int, error) {
	certs := r.certs.In(tx)
	n, cont := 0, ""
	for {
		page, next, err := certs.ListBy(ctx, IndexCertificatesByRegistration, registrationID, cont, r.pageSize)
		if err != nil {
			return 0, fmt.Errorf("revocation: list certificates of %q: %w", registrationID, err)
		}
		for _, c := range page {
			if c.Revoked() {
				continue
			}
			at := r.now().UTC()
			c.RevokedAt, c.RevocationReason = &at, reason
			if _, err := certs.Put(ctx, c, store.Condition{IfMatch: c.ETag}); err != nil {
				return 0, fmt.Errorf("revocation: revoke certificate %s: %w", c.Serial, err)
			}
			n++
		}
		if next == "" {
			return n, nil
		}
		cont = next
	}
}

// revocationState is the record under stateKey.
type revocationState struct {
	// Generation grows with every transaction that revokes something: a
	// CRL signed at an older generation is stale.
	Generation int64 `json:"generation"`
	// Number is the CRL number of the last published CRL (0: none yet).
	Number int64 `json:"number"`
	// SignedGeneration is the generation the published CRL includes.
	SignedGeneration int64     `json:"signedGeneration"`
	ThisUpdate       time.Time `json:"thisUpdate,omitzero"`
	NextUpdate       time.Time `json:"nextUpdate,omitzero"`
}

// Keys in BucketRevocation.
const (
	stateKey = "state"
	crlKey   = "crl"
)

func readState(ctx context.Context, tx store.Tx) (revocationState, error) {
	var s revocationState
	it, err := tx.Get(ctx, BucketRevocation, stateKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s, nil
	case err != nil:
		return s, fmt.Errorf("revocation: read revocation state: %w", err)
	}
	if err := json.Unmarshal(it.Value, &s); err != nil {
		return s, fmt.Errorf("revocation: decode revocation state: %w", err)
	}
	return s, nil
}

func writeState(ctx context.Context, tx store.Tx, s revocationState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := tx.Put(ctx, BucketRevocation, stateKey, b, store.Condition{}); err != nil {
		return fmt.Errorf("revocation: write revocation state: %w", err)
	}
	return nil
}

// bumpGeneration marks the revoked set as changed, in the transaction
// that changed it.
func bumpGeneration(ctx context.Context, tx store.Tx) error {
	s, err := readState(ctx, tx)
	if err != nil {
		return err
	}
	s.Generation++
	return writeState(ctx, tx, s)
}

// Revoked calls fn with every revoked certificate, a page per read
// transaction (so a long list never holds one transaction open).
func (r *Revocations) Revoked(ctx context.Context, fn func(*enrollment.Certificate) error) error {
	cont := ""
	for {
		page, next, err := r.certs.ListBy(ctx, IndexCertificatesRevoked, revokedIndexValue, cont, 1000)
		if err != nil {
			return fmt.Errorf("revocation: list revoked certificates: %w", err)
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cont = next
	}
}

// InvalidateCRLTx makes the next CRL request sign a new CRL, in the
// transaction tx: the CA's signing intermediate changed (zdps ca rotate), so
// the published CRL is signed by an intermediate no longer issuing.
func InvalidateCRLTx(ctx context.Context, tx store.Tx) error { return bumpGeneration(ctx, tx) }
