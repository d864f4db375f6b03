package api

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/zdps/zdps/internal/api/serviceauth"
	"github.com/zdps/zdps/internal/audit"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/ratelog"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/syncio"
)

// Defaults of the limits in Config.
const (
	DefaultMaxBodyBytes = 16 << 20
	DefaultMaxBulkItems = 1000
	DefaultMaxPageSize  = 1000
	DefaultTokenSkew    = 5 * time.Minute
)

// Config configures the API. Store, HostName and Logger are required.
type Config struct {
	// Store is what the API reads itself: the policies that authenticate
	// requests, the health check and GET /backup. Everything else goes
	// through UseCases.
	Store *store.Store
	// HostName is the host clients address, e.g. "dps.example.com" or
	// "localhost:8443". A service SAS must name it in sr (compared
	// case-insensitively, with or without the port).
	HostName string
	// Logger receives the access log, the audit events and server faults.
	Logger *slog.Logger
	// Trail, when set, records in the audit trail what changes nothing
	// and so has no transaction of its own: a read of keys, a backup.
	// Changes are recorded in their own transactions by the store the
	// use cases write through (internal/audit Changes).
	Trail interface{ Add(e audit.Event) }
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand is the source of generated keys and request IDs; crypto/rand
	// when nil. It is used under a lock, so it need not be safe for
	// concurrent use.
	Rand io.Reader
	// MaxBodyBytes bounds every request body; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// MaxBulkItems bounds the items of one bulk call; DefaultMaxBulkItems
	// when 0.
	MaxBulkItems int
	// MaxPageSize bounds the items of one query page; a larger
	// x-ms-max-item-count is capped to it. DefaultMaxPageSize when 0.
	MaxPageSize int
	// Bearer, when set, admits "Authorization: Bearer <JWT>" besides SAS
	// (OIDC access tokens, internal/oidcauth); nil refuses bearer tokens.
	Bearer BearerVerifier
	// TokenSkew is the clock skew allowed on SAS expiry; DefaultTokenSkew
	// when 0.
	TokenSkew time.Duration
	// UseCases run what the handlers translate (internal/manage, built
	// by cmd/zdps with its revocation and write checks). When they are
	// not all set, New builds a plain manage.Service over Store without
	// revocation or write checks: what a test of routes mounted on this
	// router needs.
	UseCases UseCases
	// CA is the embedded CA GET /ca and /ca/bundle describe; those routes
	// answer 404 when it is nil.
	CA CAView
	// CRL is the CRL GET /crl answers; 404 when it is nil.
	CRL CRLSource
}

// API is the service API. It is safe for concurrent use.
type API struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger
	now   func() time.Time
	rand  io.Reader
	mux   *chi.Mux
	// uc runs the management use cases the handlers translate.
	uc UseCases
	// explainer answers POST /allocation/explain (SetExplainer).
	explainer atomic.Pointer[explainerBox]
	// faultLog logs connection faults, which anyone can cause.
	faultLog *ratelog.Logger
	// auth finds who sends a request (SAS or bearer token).
	auth *serviceauth.Authenticator
}

// New validates cfg, fills in defaults and builds the router.
func New(cfg Config) (*API, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if strings.TrimSpace(cfg.HostName) == "" || strings.ContainsAny(cfg.HostName, "/ ") {
		errs = append(errs, fmt.Errorf("HostName %q must be a host name with an optional port", cfg.HostName))
	}
	if cfg.Logger == nil {
		errs = append(errs, errors.New("Logger is required"))
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxBulkItems < 0 || cfg.MaxPageSize < 0 || cfg.TokenSkew < 0 {
		errs = append(errs, errors.New("limits must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("api: invalid config: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.MaxBulkItems = cmp.Or(cfg.MaxBulkItems, DefaultMaxBulkItems)
	cfg.MaxPageSize = cmp.Or(cfg.MaxPageSize, DefaultMaxPageSize)
	cfg.TokenSkew = cmp.Or(cfg.TokenSkew, DefaultTokenSkew)
	a := &API{
		cfg:   cfg,
		store: cfg.Store,
		log:   cfg.Logger,
		now:   cfg.Now,
		rand:  syncio.Reader(cfg.Rand),

		faultLog: ratelog.New(cfg.Logger, faultLogLines, faultLogInterval),
		auth:     &serviceauth.Authenticator{Policies: cfg.Store.Policies, HostName: cfg.HostName, TokenSkew: cfg.TokenSkew, Bearer: cfg.Bearer, Now: cfg.Now},
	}
	if !cfg.UseCases.complete() {
		m, err := manage.New(manage.Config{Store: cfg.Store, Logger: cfg.Logger, Rand: a.rand, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		a.cfg.UseCases = UseCasesOf(m)
	}
	a.uc = a.cfg.UseCases
	a.mux = a.NewRouter()
	if err := a.routes(a.mux); err != nil {
		return nil, err
	}
	return a, nil
}

// Handler is the service API alone on a router of its own (NewRouter and
// Routes), with whatever Mount added: for tests and embedding. zdps serve
// composes its root router in cmd/zdps instead.
func (a *API) Handler() http.Handler { return a.mux }

// Mount adds another API's routes to Handler's router, after New and
// before serving, as a root router would (Routes). fn must add routes with
// Get/Put/Post/Method/With/Group/Route, never Use (chi refuses middleware
// after routes), and should wrap them in RequireAPIVersion; WriteError
// answers in the DPS error format.
func (a *API) Mount(fn func(r chi.Router)) { fn(a.mux) }
