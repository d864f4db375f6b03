package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/ratelog"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
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
	// Store holds enrollments, registrations, hubs, policies and settings.
	Store *store.Store
	// HostName is the host clients address, e.g. "dps.example.com" or
	// "localhost:8443". A service SAS must name it in sr (compared
	// case-insensitively, with or without the port).
	HostName string
	// Logger receives the access log, the audit events and server faults.
	Logger *slog.Logger
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
	// TokenSkew is the clock skew allowed on SAS expiry; DefaultTokenSkew
	// when 0.
	TokenSkew time.Duration
	// CA is the embedded CA: GET /ca and /ca/bundle describe it and it
	// signs the CRL of GET /crl. Those routes answer 404 when it is nil.
	CA *ca.CA
	// CRLValidity is how far the served CRL's nextUpdate lies;
	// ca.DefaultCRLValidity when 0.
	CRLValidity time.Duration
	// KeepCertificatesOnDisable turns off the revocation of operational
	// certificates when a registration record, an enrollment or a group is
	// deleted, or an enrollment or group is disabled. The zero value
	// revokes, the safe default (docs/architecture.md#the-ca-and-revocation).
	KeepCertificatesOnDisable bool
	// CheckWebhookURL, when set, checks the webhook URL of an enrollment or
	// group with the custom allocation policy when it is written (the
	// custom policy's refused addresses); an error refuses the write.
	CheckWebhookURL func(url string) error
	// CheckTPMEnrollment, when set, checks a TPM individual enrollment
	// when it is written (the EK certificate it carries); an error
	// refuses the write.
	CheckTPMEnrollment func(e *enrollment.IndividualEnrollment) error
}

// API is the service API. It is safe for concurrent use.
type API struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger
	now   func() time.Time
	rand  io.Reader
	mux   *chi.Mux
	rv    *revoker
	// m runs the management use cases the handlers translate.
	m *manage.Service
	// explainer answers POST /allocation/explain (SetExplainer).
	explainer atomic.Pointer[explainerBox]
	// faultLog logs connection faults, which anyone can cause.
	faultLog *ratelog.Logger
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
	if cfg.MaxBodyBytes < 0 || cfg.MaxBulkItems < 0 || cfg.MaxPageSize < 0 || cfg.TokenSkew < 0 || cfg.CRLValidity < 0 {
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
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBulkItems == 0 {
		cfg.MaxBulkItems = DefaultMaxBulkItems
	}
	if cfg.MaxPageSize == 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	if cfg.TokenSkew == 0 {
		cfg.TokenSkew = DefaultTokenSkew
	}
	a := &API{
		cfg:   cfg,
		store: cfg.Store,
		log:   cfg.Logger,
		now:   cfg.Now,
		rand:  &lockedReader{r: cfg.Rand},

		faultLog: ratelog.New(cfg.Logger, faultLogLines, faultLogInterval),
	}
	rv, err := newRevocation(cfg)
	if err != nil {
		return nil, err
	}
	a.rv = rv
	mcfg := manage.Config{
		Store: cfg.Store, Logger: cfg.Logger, Rand: a.rand, Now: cfg.Now,
		CheckWebhookURL: cfg.CheckWebhookURL, CheckTPMEnrollment: cfg.CheckTPMEnrollment,
	}
	if !cfg.KeepCertificatesOnDisable {
		mcfg.Revocations = rv.rev
	}
	if a.m, err = manage.New(mcfg); err != nil {
		return nil, err
	}
	mux, err := a.router()
	if err != nil {
		return nil, err
	}
	a.mux = mux
	return a, nil
}

// Handler is the whole API: the service routes, /healthz and whatever was
// mounted.
func (a *API) Handler() http.Handler { return a.mux }

// Mount lets another API (the device API: /{idScope}/registrations/...)
// add its routes to the same router, after New and before serving. They
// run under the common middleware (request ID, access log, panic recovery,
// case-insensitive paths with decoded IDs, body limit) but without service
// auth, which they replace with their own. fn must add routes with
// Get/Put/Post/Method/With/Group/Route, never Use (chi refuses middleware
// after routes), and should wrap them in RequireAPIVersion; WriteError
// answers in the DPS error format. The literal segments it uses must be in
// literals, or they will be matched case-sensitively.
func (a *API) Mount(fn func(r chi.Router)) { fn(a.mux) }

// lockedReader serialises reads so that an injected reader that is not
// safe for concurrent use (a deterministic test source) can serve
// concurrent requests.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
