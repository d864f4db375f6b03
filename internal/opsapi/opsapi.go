package opsapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/zdps/zdps/pkg/dps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Trail is the audit trail the routes read (*audit.Log).
type Trail interface {
	List(ctx context.Context, f audit.Filter, after uint64, limit, maxScan int) ([]audit.Sealed, uint64, error)
	Verify(ctx context.Context) (*audit.Report, error)
}

// Alerts are the stored alerts (*detect.Alerts).
type Alerts interface {
	List(ctx context.Context, status, after string, limit int) ([]*detect.Record, error)
	Get(ctx context.Context, id string) (*detect.Record, error)
	Ack(ctx context.Context, id, by, ifMatch string) (*detect.Record, error)
}

// Host is what the routes need of the service API: its authorization and
// its error answers (*api.API).
type Host interface {
	Authorize(right string, next http.Handler) http.Handler
	WriteError(w http.ResponseWriter, r *http.Request, err error)
}

// Config configures the routes. Host, Trail and Alerts are required.
type Config struct {
	Host   Host
	Trail  Trail
	Alerts Alerts
	// Posture computes the report with the thresholds of the request
	// (their defaults when zero).
	Posture func(ctx context.Context, t posture.Thresholds) (*posture.Report, error)
	// Metrics serves /metrics; nil leaves the route out.
	Metrics http.Handler
	// ScrapeToken, when set, admits "Authorization: Bearer TOKEN" on
	// /metrics besides a service SAS.
	ScrapeToken string
}

// API serves the routes.
type API struct{ cfg Config }

// New validates cfg.
func New(cfg Config) (*API, error) {
	if cfg.Host == nil || cfg.Trail == nil || cfg.Alerts == nil || cfg.Posture == nil {
		return nil, errors.New("opsapi: Host, Trail, Alerts and Posture are required")
	}
	return &API{cfg: cfg}, nil
}

// Limits of a page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// maxScan bounds the entries one /audit request reads looking for
	// matches; the answer's next lets the client go on.
	maxScan = 20_000
)

// errBadRequest maps to 400 through the host's mapping.
var errBadRequest = fmt.Errorf("opsapi: bad request: %w", enrollment.ErrInvalid)

// Routes adds the routes to r.
func (a *API) Routes(r chi.Router) {
	auth := func(h http.HandlerFunc) http.Handler { return a.cfg.Host.Authorize(enrollment.RightServiceConfig, h) }
	r.Method(http.MethodGet, "/audit", auth(a.listAudit))
	r.Method(http.MethodGet, "/audit/verify", auth(a.verify))
	r.Method(http.MethodGet, "/alerts", auth(a.listAlerts))
	r.Method(http.MethodGet, "/alerts/{id}", auth(a.getAlert))
	r.Method(http.MethodPost, "/alerts/{id}/ack", auth(a.ackAlert))
	r.Method(http.MethodGet, "/posture", auth(a.posture))
	if a.cfg.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", a.metrics())
	}
}

func (a *API) metrics() http.Handler {
	withSAS := a.cfg.Host.Authorize(enrollment.RightServiceConfig, a.cfg.Metrics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.cfg.ScrapeToken != "" {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.ScrapeToken)) == 1 {
				a.cfg.Metrics.ServeHTTP(w, r)
				return
			}
		}
		// Prometheus sends no api-version: admit its absence here only.
		if r.URL.Query().Get("api-version") == "" {
			q := r.URL.Query()
			q.Set("api-version", "2021-10-01")
			r.URL.RawQuery = q.Encode()
		}
		withSAS.ServeHTTP(w, r)
	})
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func limitOf(q string) (int, error) {
	if q == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, badRequest("limit must be a whole number from 1 to %d", MaxLimit)
	}
	return n, nil
}

func timeOf(name, q string) (time.Time, error) {
	if q == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, q)
	if err != nil {
		return time.Time{}, badRequest("%s must be an RFC 3339 time", name)
	}
	return t, nil
}

// AuditPage is the answer of GET /audit.
type AuditPage = dps.AuditPage

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f audit.Filter
	var err error
	if f.Since, err = timeOf("since", q.Get("since")); err != nil {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	if f.Until, err = timeOf("until", q.Get("until")); err != nil {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	f.Action, f.RegistrationID, f.Outcome = q.Get("action"), q.Get("registrationId"), q.Get("outcome")
	var after uint64
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			a.cfg.Host.WriteError(w, r, badRequest("after must be a sequence number"))
			return
		}
	}
	limit, err := limitOf(q.Get("limit"))
	if err != nil {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	evs, next, err := a.cfg.Trail.List(r.Context(), f, after, limit, maxScan)
	if err != nil {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	if evs == nil {
		evs = []audit.Sealed{}
	}
	writeJSON(w, http.StatusOK, &AuditPage{Events: evs, Next: next})
}

func (a *API) verify(w http.ResponseWriter, r *http.Request) {
	rep, err := a.cfg.Trail.Verify(r.Context())
	if err != nil && !errors.Is(err, audit.ErrTampered) {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	// A trail that does not verify is the answer, not a fault: 200 with
	// the problem, which the client reports.
	writeJSON(w, http.StatusOK, rep)
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := limitOf(q.Get("limit"))
	if err != nil {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	st := q.Get("status")
	if st != "" && st != detect.StatusOpen && st != detect.StatusAcknowledged {
		a.cfg.Host.WriteError(w, r, badRequest("status must be %s or %s", detect.StatusOpen, detect.StatusAcknowledged))
		return
	}
	recs, err := a.cfg.Alerts.List(r.Context(), st, q.Get("after"), limit)
	if err != nil {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	if recs == nil {
		recs = []*detect.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
}

func alertErr(err error) error {
	if errors.Is(err, detect.ErrNotFound) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	return err
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request) {
	rec, err := a.cfg.Alerts.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		a.cfg.Host.WriteError(w, r, alertErr(err))
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *API) ackAlert(w http.ResponseWriter, r *http.Request) {
	by := audit.ActorFrom(r.Context())
	rec, err := a.cfg.Alerts.Ack(r.Context(), chi.URLParam(r, "id"), by, strings.Trim(r.Header.Get("If-Match"), `"`))
	if err != nil {
		a.cfg.Host.WriteError(w, r, alertErr(err))
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *API) posture(w http.ResponseWriter, r *http.Request) {
	var th posture.Thresholds
	for _, p := range []struct {
		name string
		to   *int
	}{{"expiryDays", &th.ExpiryDays}, {"keyAgeDays", &th.KeyAgeDays}, {"unusedDays", &th.UnusedDays}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 36500 {
				a.cfg.Host.WriteError(w, r, badRequest("%s must be a whole number of days from 1 to 36500", p.name))
				return
			}
			*p.to = n
		}
	}
	rep, err := a.cfg.Posture(r.Context(), th)
	if err != nil {
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"errorCode":500000,"message":"encode answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
