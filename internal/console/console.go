package console

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/console/chart"
	"github.com/zdps/zdps/internal/console/hubcount"
	"github.com/zdps/zdps/internal/console/sessions"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Documents are the use cases of one kind of enrollment document
// (manage.Docs), as the console calls them.
type Documents[T store.Document] interface {
	Get(ctx context.Context, id string) (T, error)
	List(ctx context.Context, cont string, limit int) ([]T, string, error)
	Put(ctx context.Context, v T, cond store.Condition) (created bool, err error)
	Delete(ctx context.Context, id, ifMatch string) error
}

// Registrations are the use cases of registration records.
type Registrations interface {
	Registration(ctx context.Context, id string) (*enrollment.Registration, error)
	DeleteRegistration(ctx context.Context, id, ifMatch string) error
	Registrations(ctx context.Context, group, cont string, limit int) ([]*enrollment.Registration, string, error)
}

// Hubs are the use cases of linked hubs. The hubs page lists them from
// the store, with device counts it caches (hubCounts).
type Hubs interface {
	Hub(ctx context.Context, name string) (*enrollment.Hub, error)
	PutHub(ctx context.Context, h *enrollment.Hub, cond store.Condition) (created bool, err error)
}

// CACertificates are the use cases of registered CA certificates.
type CACertificates interface {
	CACertificate(ctx context.Context, name string) (*enrollment.CACertificate, error)
	CACertificates(ctx context.Context, cont string, limit int) ([]*enrollment.CACertificate, string, error)
	PutCACertificate(ctx context.Context, c *enrollment.CACertificate, cond store.Condition) (created bool, err error)
	DeleteCACertificate(ctx context.Context, name, ifMatch string) error
	VerificationCode(ctx context.Context, name string) (*enrollment.CACertificate, error)
	VerifyCACertificate(ctx context.Context, name string, proof *x509.Certificate) (*enrollment.CACertificate, error)
}

// Trail is the sealed audit trail the console reads (*audit.Log).
type Trail interface {
	List(ctx context.Context, f audit.Filter, after uint64, limit, maxScan int) ([]audit.Sealed, uint64, error)
	Head(ctx context.Context) (uint64, error)
}

// Alerts are the stored alerts (*detect.Alerts).
type Alerts interface {
	List(ctx context.Context, status, after string, limit int) ([]*detect.Record, error)
	Get(ctx context.Context, id string) (*detect.Record, error)
	Ack(ctx context.Context, id, by, ifMatch string) (*detect.Record, error)
}

// CA is the embedded CA the CA page describes.
type CA interface {
	Root() *x509.Certificate
	Intermediate() *x509.Certificate
}

// Host authenticates the routes served to the CLI with a service SAS
// (*api.API's Authorize), so POST /console/links checks exactly what the
// service API checks.
type Host interface {
	Authorize(right string, next http.Handler) http.Handler
}

// SSO is a single sign-on provider (internal/oidcauth implements it).
type SSO interface {
	// Begin redirects the browser to the provider's sign-in.
	Begin(w http.ResponseWriter, r *http.Request)
	// Finish completes the provider's redirect back to the console and
	// returns who signed in; it writes nothing to w on success.
	Finish(w http.ResponseWriter, r *http.Request) (principal.Principal, error)
}

// Defaults of Config's durations.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
	DefaultLinkTTL     = 5 * time.Minute
)

// Config configures the console. Backend, Store, Host and the use cases
// are required; the operations parts (Trail, Alerts, Posture, CA,
// Explain) may be nil, and their panels then say they are unavailable.
type Config struct {
	// Backend keeps the sessions and the sign-in links (not audited: they
	// are not management changes).
	Backend store.Backend
	// Store is read where no use case lists what a page shows: the
	// policies behind sessions, registration records by hub.
	Store *store.Store

	Enrollments   Documents[*enrollment.IndividualEnrollment]
	Groups        Documents[*enrollment.EnrollmentGroup]
	Registrations Registrations
	Hubs          Hubs
	Certificates  CACertificates

	// KeyReads records a reveal of keys in the audit trail, as the
	// service API records its read of keys (*audit.Trail).
	KeyReads interface{ Add(e audit.Event) }
	Trail    Trail
	Alerts   Alerts
	// Posture computes the posture report; the dashboard shows the last
	// one computed (it walks every collection, so it runs in the
	// background at most once per PostureEvery).
	Posture      func(ctx context.Context) (*posture.Report, error)
	PostureEvery time.Duration
	CA           CA
	// Explain answers the allocation explain of the hubs page.
	Explain func(ctx context.Context, req dps.ExplainRequest) (*dps.Explanation, error)

	Host Host
	// SSO, when set, adds "Sign in with SSO".
	SSO SSO

	Logger *slog.Logger
	Now    func() time.Time
	// IdleTimeout ends a session unused this long; MaxAge ends any
	// session this long after sign-in; LinkTTL is how long a sign-in link
	// may wait to be used.
	IdleTimeout, MaxAge, LinkTTL time.Duration
	// PageSize is the rows of a list page (default 50).
	PageSize int
}

// Console serves the pages.
type Console struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	pages pages

	sessions *sessions.Store
	charts   chart.Counter
	counts   *hubcount.Cache

	postureMu      sync.Mutex
	postureReport  *posture.Report
	postureAt      time.Time
	postureRunning bool
}

// New validates cfg and parses the templates.
func New(cfg Config) (*Console, error) {
	if cfg.Backend == nil || cfg.Store == nil || cfg.Host == nil || cfg.Enrollments == nil || cfg.Groups == nil ||
		cfg.Registrations == nil || cfg.Hubs == nil || cfg.Certificates == nil {
		return nil, errors.New("console: Backend, Store, Host and the use cases are required")
	}
	if cfg.IdleTimeout < 0 || cfg.MaxAge < 0 || cfg.LinkTTL < 0 {
		return nil, errors.New("console: durations must not be negative")
	}
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, DefaultMaxAge)
	cfg.LinkTTL = cmp.Or(cfg.LinkTTL, DefaultLinkTTL)
	cfg.PageSize = cmp.Or(cfg.PageSize, 50)
	cfg.PostureEvery = cmp.Or(cfg.PostureEvery, 5*time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	ses := &sessions.Store{Backend: cfg.Backend, Policies: cfg.Store.Policies, Log: cfg.Logger, Now: cfg.Now,
		IdleTimeout: cfg.IdleTimeout, MaxAge: cfg.MaxAge, LinkTTL: cfg.LinkTTL}
	counts := &hubcount.Cache{Log: cfg.Logger, Now: cfg.Now, Count: func(ctx context.Context, hub string) (int, error) {
		return cfg.Store.Registrations.CountBy(ctx, store.IndexRegistrationsByHub, hub)
	}}
	return &Console{cfg: cfg, log: cfg.Logger, now: cfg.Now, pages: p, sessions: ses, counts: counts}, nil
}

// Routes adds the console's routes to r: everything under /console.
func (c *Console) Routes(r chi.Router) {
	r.Route("/console", func(r chi.Router) {
		r.Use(securityHeaders)
		r.Get("/static/{file}", c.static)
		r.Get("/signin", c.signinPage)
		r.Get("/link/{token}", c.linkPage)
		r.Post("/link/{token}", c.linkConsume)
		r.Method(http.MethodPost, "/links", c.cfg.Host.Authorize(enrollment.RightEnrollmentRead, http.HandlerFunc(c.createLink)))
		r.Get("/sso/login", c.ssoLogin)
		r.Get("/sso/callback", c.ssoCallback)

		r.Group(func(r chi.Router) {
			r.Use(c.requireSession)
			r.Post("/logout", c.logout)
			r.Get("/", c.dashboard)

			enrollmentPages.routes(c, r)
			groupPages.routes(c, r)

			r.Get("/registrations", c.need(enrollment.RightRegistrationStatusRead, c.registrationsPage))
			r.Get("/registrations/{id}", c.need(enrollment.RightRegistrationStatusRead, c.registrationPage))
			r.Post("/registrations/{id}/revoke", c.need(enrollment.RightRegistrationStatusWrite, c.revokeRegistration))

			r.Get("/hubs", c.need(enrollment.RightServiceConfig, c.hubsPage))
			r.Post("/hubs/{name}", c.need(enrollment.RightServiceConfig, c.updateHub))
			r.Post("/hubs/explain", c.need(enrollment.RightServiceConfig, c.explain))

			r.Get("/ca", c.need(enrollment.RightServiceConfig, c.caPage))
			r.Post("/ca/certificates", c.need(enrollment.RightServiceConfig, c.addCACertificate))
			r.Post("/ca/certificates/{name}/code", c.need(enrollment.RightServiceConfig, c.verificationCode))
			r.Post("/ca/certificates/{name}/verify", c.need(enrollment.RightServiceConfig, c.verifyCACertificate))
			r.Post("/ca/certificates/{name}/delete", c.need(enrollment.RightServiceConfig, c.deleteCACertificate))

			r.Get("/audit", c.need(enrollment.RightServiceConfig, c.auditPage))
			r.Get("/alerts", c.need(enrollment.RightServiceConfig, c.alertsPage))
			r.Post("/alerts/{id}/ack", c.need(enrollment.RightServiceConfig, c.ackAlert))
		})
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			c.fail(w, r, http.StatusNotFound, "There is no such page in the console.")
		})
	})
}

// securityHeaders keeps the pages out of frames and off other origins'
// scripts: every asset is served from /console/static.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin: no URL (a sign-in link) leaks to another site, and
		// browsers still send Origin on the console's own POSTs (with
		// no-referrer they send "Origin: null").
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// need refuses, 403, a principal without right: the same right the
// service API route of the same action requires.
func (c *Console) need(right string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		if !p.HasRight(right) {
			c.fail(w, r, http.StatusForbidden, "Your sign-in does not grant the "+right+" right this needs.")
			return
		}
		h(w, r)
	}
}

// actorContext marks ctx for the audit trail and the use cases, as the
// service API does.
func actorContext(ctx context.Context, p principal.Principal) context.Context {
	return principal.With(audit.WithActor(ctx, p.Actor()), p)
}
