package sites

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Sentinel errors; the gateway API maps them.
var (
	// ErrUnauthorized: no client certificate, or not one this zdps issued
	// and still stands behind (unknown, altered, revoked, expired).
	ErrUnauthorized = errors.New("sites: not an authenticated gateway")
	// ErrForbidden: a certificate of a device that is not a gateway (no
	// iotEdge, no site, the site gone, the enrollment disabled).
	ErrForbidden = errors.New("sites: not a gateway")
	// ErrInvalid: a request a gateway sent is malformed; wraps
	// enrollment.ErrInvalid (400).
	ErrInvalid = fmt.Errorf("%w: gateway request", enrollment.ErrInvalid)
	// ErrCannotDelegate: this zdps's CA allows no CA below its
	// intermediate (one created before edge gateways): 409, for the
	// operator to replace the CA.
	ErrCannotDelegate = errors.New("sites: the CA cannot issue delegated CAs")
)

// Recorder records audit events in a transaction (*audit.Log).
type Recorder interface {
	Record(ctx context.Context, tx store.Tx, e audit.Event) error
}

// Revoker revokes a registration's certificates in a transaction
// (*revocation.Revocations).
type Revoker interface {
	RevokeRegistrationTx(ctx context.Context, tx store.Tx, registrationID string, reason int) (int, error)
	StoreCertificateTx(ctx context.Context, tx store.Tx, c *enrollment.Certificate) error
}

// SiteCA signs a delegated CA for a gateway's CA key (the CA, through an
// adapter of cmd/zdps).
type SiteCA interface {
	// SignSiteCA returns the chain (site CA, intermediate(s), root, DER),
	// the site CA's serial (lower-case hex) and NotAfter.
	SignSiteCA(csrDER []byte, site, gateway string, validity time.Duration) (chain [][]byte, serial string, notAfter time.Time, err error)
}

// Config configures the Service. Store, Recorder, Revoker and CA are
// required.
type Config struct {
	// Store is the audited store (writes under an actor are audit events)
	// over a backend wrapped by Feed.
	Store    *store.Store
	Recorder Recorder
	Revoker  Revoker
	CA       SiteCA
	// SiteCAValidity is the life of a delegated CA (ca default when 0).
	SiteCAValidity time.Duration
	Now            func() time.Time
	Logger         *slog.Logger
}

// Service holds the use cases.
type Service struct {
	st       *store.Store
	sites    *store.Collection[*enrollment.Site]
	certs    *store.Collection[*enrollment.Certificate]
	rec      Recorder
	rev      Revoker
	ca       SiteCA
	validity time.Duration
	now      func() time.Time
	log      *slog.Logger
}

// New validates cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Recorder == nil || cfg.Revoker == nil || cfg.CA == nil {
		return nil, errors.New("sites: Store, Recorder, Revoker and CA are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		st:       cfg.Store,
		sites:    Sites(cfg.Store.Backend, cfg.Now),
		certs:    revocation.Certificates(cfg.Store.Backend, cfg.Now),
		rec:      cfg.Recorder,
		rev:      cfg.Revoker,
		ca:       cfg.CA,
		validity: cfg.SiteCAValidity,
		now:      cfg.Now,
		log:      cfg.Logger,
	}, nil
}

// Sites is the collection of sites on b.
func Sites(b store.Backend, now func() time.Time) *store.Collection[*enrollment.Site] {
	return store.NewCollection(b, BucketSites, now, func() *enrollment.Site { return new(enrollment.Site) })
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
