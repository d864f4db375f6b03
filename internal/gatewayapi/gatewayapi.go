package gatewayapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/sites"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Host is what the routes need of the service API: its authorization and
// its error answers (*api.API).
type Host interface {
	Authorize(right string, next http.Handler) http.Handler
	WriteError(w http.ResponseWriter, r *http.Request, err error)
}

// UseCases are internal/sites' (*sites.Service).
type UseCases interface {
	Site(ctx context.Context, name string) (*enrollment.Site, error)
	ListSites(ctx context.Context, cont string, limit int) ([]*enrollment.Site, string, error)
	PutSite(ctx context.Context, s *enrollment.Site, cond store.Condition) (bool, error)
	DeleteSite(ctx context.Context, name, ifMatch string) error

	Authenticate(ctx context.Context, cert *x509.Certificate) (*sites.Gateway, error)
	IssueCA(ctx context.Context, gw *sites.Gateway, csrDER []byte) ([][]byte, error)
	Pull(ctx context.Context, gw *sites.Gateway, cursor string, limit int) (*dps.ChangesPage, error)
	IngestRecords(ctx context.Context, gw *sites.Gateway, recs []dps.GatewayRecord) ([]dps.GatewayRecordResult, error)
	IngestAudit(ctx context.Context, gw *sites.Gateway, evs []dps.AuditEvent) (*dps.GatewayAuditResult, error)
	ReportStatus(ctx context.Context, gw *sites.Gateway, st *dps.GatewayStatus) error
}

// Config configures the routes; Host and UseCases are required.
type Config struct {
	Host     Host
	UseCases UseCases
	// MaxPageSize bounds a page of GET /sites (100 when 0).
	MaxPageSize int
	Logger      *slog.Logger
	Now         func() time.Time
}

// API serves the routes.
type API struct {
	cfg Config
	uc  UseCases
	log *slog.Logger
}

// New validates cfg.
func New(cfg Config) (*API, error) {
	if cfg.Host == nil || cfg.UseCases == nil {
		return nil, errors.New("gatewayapi: Host and UseCases are required")
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &API{cfg: cfg, uc: cfg.UseCases, log: cfg.Logger}, nil
}

// Routes adds both route sets to r.
func (a *API) Routes(r chi.Router) {
	auth := func(h http.HandlerFunc) http.Handler {
		return a.cfg.Host.Authorize(enrollment.RightServiceConfig, h)
	}
	r.Method(http.MethodGet, "/sites", auth(a.listSites))
	r.Method(http.MethodGet, "/sites/{name}", auth(a.getSite))
	r.Method(http.MethodPut, "/sites/{name}", auth(a.putSite))
	r.Method(http.MethodDelete, "/sites/{name}", auth(a.deleteSite))

	gw := func(h func(http.ResponseWriter, *http.Request, *sites.Gateway)) http.Handler { return a.gateway(h) }
	r.Method(http.MethodPost, dps.GatewayPrefix+"/ca", gw(a.postCA))
	r.Method(http.MethodGet, dps.GatewayPrefix+"/changes", gw(a.getChanges))
	r.Method(http.MethodPost, dps.GatewayPrefix+"/records", gw(post(a, a.postRecords)))
	r.Method(http.MethodPost, dps.GatewayPrefix+"/audit", gw(post(a, a.postAudit)))
	r.Method(http.MethodPost, dps.GatewayPrefix+"/status", gw(post(a, a.postStatus)))
}

// Errors of the transport itself.
var (
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
)

const (
	msgUnauthorized = "Unauthorized: the gateway API needs the TLS client certificate this zdps issued to the gateway, unrevoked and unexpired."
	msgForbidden    = "Forbidden: the client certificate is not a gateway's: its enrollment needs capabilities.iotEdge, a site that exists, and to be enabled."
)

// gateway authenticates the TLS client certificate and hands the gateway
// to h.
func (a *API) gateway(h func(http.ResponseWriter, *http.Request, *sites.Gateway)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cert *x509.Certificate
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cert = r.TLS.PeerCertificates[0]
		}
		gw, err := a.uc.Authenticate(r.Context(), cert)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		h(w, r, gw)
	})
}

// writeError answers the gateway's own refusals here (the service API's
// 401 speaks of SAS tokens) and everything else through the host's
// mapping.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := 0, 0, ""
	switch {
	case errors.Is(err, sites.ErrUnauthorized) || errors.Is(err, errUnauthorized):
		status, code, msg = http.StatusUnauthorized, dps.CodeUnauthorized, msgUnauthorized
	case errors.Is(err, sites.ErrForbidden) || errors.Is(err, errForbidden):
		status, code, msg = http.StatusForbidden, dps.CodeForbidden, msgForbidden
	case errors.Is(err, sites.ErrCannotDelegate):
		status, code, msg = http.StatusConflict, dps.CodeConflict, err.Error()
	default:
		a.cfg.Host.WriteError(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "gateway refused", "status", status, "reason", err, "remote", r.RemoteAddr)
	w.Header().Set("x-ms-error-code", strconv.Itoa(code))
	writeJSON(w, status, dps.ErrorBody{ErrorCode: code, Message: msg, Info: map[string]any{}, TimestampUTC: a.cfg.Now().UTC().Format(time.RFC3339Nano)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(fmt.Sprintf(`{"errorCode":%d,"message":"internal error"}`, dps.CodeInternal)), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// badRequest is a client error the host maps to 400.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", enrollment.ErrInvalid, fmt.Sprintf(format, args...))
}

// decodeBody strictly decodes a JSON body into v.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err // the body limit's error, which the host maps to 413
	}
	return DecodeStrict(b, v)
}

// DecodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data, as a 400.
func DecodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return badRequest("a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("unexpected data after the JSON body")
	}
	return nil
}

// DecodeCARequest decodes the body of POST /gateway/v1/ca into the CSR's
// DER.
func DecodeCARequest(b []byte) ([]byte, error) {
	var req dps.GatewayCARequest
	if err := DecodeStrict(b, &req); err != nil {
		return nil, err
	}
	if req.CSR == "" || len(req.CSR) > 24<<10 {
		return nil, badRequest("csr is required (base64 DER PKCS#10, at most 16 KiB)")
	}
	der, err := base64.StdEncoding.DecodeString(req.CSR)
	if err != nil {
		return nil, badRequest("csr is not base64: %v", err)
	}
	return der, nil
}

func (a *API) postCA(w http.ResponseWriter, r *http.Request, gw *sites.Gateway) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	der, err := DecodeCARequest(b)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	chain, err := a.uc.IssueCA(r.Context(), gw, der)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := dps.GatewayCAResponse{CertificateChain: make([]string, len(chain))}
	for i, c := range chain {
		out.CertificateChain[i] = base64.StdEncoding.EncodeToString(c)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getChanges(w http.ResponseWriter, r *http.Request, gw *sites.Gateway) {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > sites.MaxPageSize {
			a.writeError(w, r, badRequest("limit must be a whole number from 1 to %d", sites.MaxPageSize))
			return
		}
		limit = n
	}
	for k := range q {
		// api-version is tolerated (a client of the service API sends
		// it everywhere); anything else, a site above all, is refused.
		if k != "cursor" && k != "limit" && k != "api-version" {
			a.writeError(w, r, badRequest("unknown query parameter %q (cursor and limit only)", k))
			return
		}
	}
	page, err := a.uc.Pull(r.Context(), gw, q.Get("cursor"), limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// post is a gateway route whose JSON body decodes into Req and whose
// answer is what do returns: 200 with it as JSON, or 204 when it is nil.
func post[Req any](a *API, do func(ctx context.Context, gw *sites.Gateway, req *Req) (any, error)) func(http.ResponseWriter, *http.Request, *sites.Gateway) {
	return func(w http.ResponseWriter, r *http.Request, gw *sites.Gateway) {
		var req Req
		if err := decodeBody(r, &req); err != nil {
			a.writeError(w, r, err)
			return
		}
		res, err := do(r.Context(), gw, &req)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if res == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

func (a *API) postRecords(ctx context.Context, gw *sites.Gateway, req *dps.GatewayRecords) (any, error) {
	res, err := a.uc.IngestRecords(ctx, gw, req.Records)
	return dps.GatewayRecordResults{Results: res}, err
}

func (a *API) postAudit(ctx context.Context, gw *sites.Gateway, req *dps.GatewayAudit) (any, error) {
	return a.uc.IngestAudit(ctx, gw, req.Events)
}

func (a *API) postStatus(ctx context.Context, gw *sites.Gateway, req *dps.GatewayStatus) (any, error) {
	return nil, a.uc.ReportStatus(ctx, gw, req)
}

// Sites resource.

func siteName(r *http.Request) (string, error) {
	name := chi.URLParam(r, "name")
	if err := enrollment.ValidateSiteName(name); err != nil {
		return "", err
	}
	return name, nil
}

func (a *API) listSites(w http.ResponseWriter, r *http.Request) {
	limit := a.cfg.MaxPageSize
	if v := strings.TrimSpace(r.Header.Get("x-ms-max-item-count")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			a.writeError(w, r, badRequest("x-ms-max-item-count must be a non-negative integer"))
			return
		}
		if n > 0 && n < limit {
			limit = n
		}
	}
	items, next, err := a.uc.ListSites(r.Context(), strings.TrimSpace(r.Header.Get("x-ms-continuation")), limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if items == nil {
		items = []*enrollment.Site{}
	}
	if next != "" {
		w.Header().Set("x-ms-continuation", next)
	}
	w.Header().Set("x-ms-max-item-count", strconv.Itoa(limit))
	w.Header().Set("x-ms-item-type", "Site")
	writeJSON(w, http.StatusOK, items)
}

func (a *API) getSite(w http.ResponseWriter, r *http.Request) {
	name, err := siteName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s, err := a.uc.Site(r.Context(), name)
	if err != nil {
		a.writeError(w, r, about(name, err))
		return
	}
	w.Header().Set("ETag", `"`+s.ETag+`"`)
	writeJSON(w, http.StatusOK, s)
}

func (a *API) putSite(w http.ResponseWriter, r *http.Request) {
	name, err := siteName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s, err := enrollment.DecodeSite(b)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if s.Name != name {
		a.writeError(w, r, badRequest("name %q in the body is not %q of the path", s.Name, name))
		return
	}
	cond := store.Condition{IfMatch: etagOf(r.Header.Get("If-Match"))}
	if strings.TrimSpace(r.Header.Get("If-None-Match")) == "*" {
		cond = store.Condition{IfNoneMatch: true}
	}
	if _, err := a.uc.PutSite(r.Context(), s, cond); err != nil {
		a.writeError(w, r, about(name, err))
		return
	}
	w.Header().Set("ETag", `"`+s.ETag+`"`)
	writeJSON(w, http.StatusOK, s)
}

func (a *API) deleteSite(w http.ResponseWriter, r *http.Request) {
	name, err := siteName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.uc.DeleteSite(r.Context(), name, etagOf(r.Header.Get("If-Match"))); err != nil {
		a.writeError(w, r, about(name, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// etagOf strips the quotes of an If-Match value.
func etagOf(h string) string {
	h = strings.TrimSpace(h)
	if h == "*" {
		return h
	}
	return strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
}

// about names the site in a not-found, conflict or precondition error.
func about(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("site %q does not exist: %w", name, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("site %q already exists: %w", name, err)
	case errors.Is(err, store.ErrPreconditionFailed):
		return fmt.Errorf("site %q: the etag does not match: %w", name, err)
	}
	return err
}
