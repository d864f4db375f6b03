package deviceapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/devicewire"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/ratelog"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Defaults of Config.
const (
	// DefaultMaxBodyBytes is Azure's device message limit (96 KB). It
	// leaves BodyRoom beside a payload of DefaultMaxPayloadBytes.
	DefaultMaxBodyBytes = devicewire.DefaultMaxBodyBytes
	// DefaultRetryAfter is the Retry-After of 202 answers.
	DefaultRetryAfter = devicewire.DefaultRetryAfter
	// MaxRetryAfter is the largest Retry-After the C SDK honours.
	MaxRetryAfter = devicewire.MaxRetryAfter
)

// Provisioner is the pipeline the device API serves
// (*provisioning.Service). The RetryAfter of an assigning operation
// OperationStatus returns raises the 202's Retry-After.
type Provisioner interface {
	Register(ctx context.Context, req *port.Request) (*enrollment.Operation, error)
	OperationStatus(ctx context.Context, req *port.Request, operationID string) (*enrollment.Operation, error)
	Status(ctx context.Context, req *port.Request) (*enrollment.Registration, error)
}

// Config configures the device API. Provisioner, IDScope and Logger are
// required.
type Config struct {
	Provisioner Provisioner
	// IDScope of this instance; a request for another answers 404.
	IDScope string
	Logger  *slog.Logger
	// Now is the clock of error timestamps; time.Now when nil.
	Now func() time.Time
	// Rand is the source of tracking IDs when the outer router set no
	// x-ms-request-id; crypto/rand when nil.
	Rand io.Reader
	// MaxBodyBytes bounds request bodies (413 above it); when 0,
	// DefaultMaxBodyBytes or MaxPayloadBytes+BodyRoom, whichever is
	// larger. When set it must be at least MaxPayloadBytes+BodyRoom, so
	// that a payload at its limit still fits with a CSR.
	MaxBodyBytes int64
	// MaxPayloadBytes bounds the register body's payload, the device's
	// custom allocation JSON (400/400004 above it); DefaultMaxPayloadBytes
	// (80 KiB) when 0. Azure's limit is 96 KB for the whole message.
	MaxPayloadBytes int64
	// BodyTimeout is how long a device may take to send its body once the
	// handler starts reading it; a stalled body answers 400 and the
	// connection closes. DefaultBodyTimeout when 0.
	BodyTimeout time.Duration
	// AzureCompatible202 answers register with 202 + operationId +
	// Retry-After, as Azure does, instead of the final 200; the device
	// then polls.
	AzureCompatible202 bool
	// RetryAfter of 202 answers, whole seconds from 1 to 300;
	// DefaultRetryAfter when 0.
	RetryAfter time.Duration
	// IdleTimeout is the serving http.Server's IdleTimeout. When set,
	// RetryAfter must be shorter: the C SDK keeps its connection across
	// polls and fails if the server closes it.
	IdleTimeout time.Duration
}

// API serves the DPS device API over HTTPS. It is safe for concurrent use.
type API struct {
	cfg        Config
	svc        Provisioner
	log        *slog.Logger
	now        func() time.Time
	randM      sync.Mutex
	rand       io.Reader
	retryAfter string
	// bodyLog logs refused bodies, which anyone can send at will.
	bodyLog *ratelog.Logger
	// maxWait caps a Retry-After set by a throttle limit: MaxRetryAfter
	// (the C SDK takes anything larger for 1 s) and shorter than the
	// server's IdleTimeout (it keeps its connection while it waits).
	maxWait time.Duration
}

// New validates cfg and builds the API.
func New(cfg Config) (*API, error) {
	var errs []error
	if cfg.Provisioner == nil {
		errs = append(errs, errors.New("Provisioner is required"))
	}
	if strings.TrimSpace(cfg.IDScope) == "" || strings.ContainsAny(cfg.IDScope, "/?#% ") {
		errs = append(errs, fmt.Errorf("IDScope %q is not a valid ID scope", cfg.IDScope))
	}
	if cfg.Logger == nil {
		errs = append(errs, errors.New("Logger is required"))
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxPayloadBytes < 0 || cfg.BodyTimeout < 0 {
		errs = append(errs, errors.New("MaxBodyBytes, MaxPayloadBytes and BodyTimeout must not be negative"))
	}
	if cfg.MaxPayloadBytes == 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = max(DefaultMaxBodyBytes, cfg.MaxPayloadBytes+BodyRoom)
	}
	if cfg.MaxBodyBytes < cfg.MaxPayloadBytes+BodyRoom {
		errs = append(errs, fmt.Errorf("MaxBodyBytes %d must be at least MaxPayloadBytes %d + %d for a CSR and the rest of the body", cfg.MaxBodyBytes, cfg.MaxPayloadBytes, BodyRoom))
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.RetryAfter < time.Second || cfg.RetryAfter > MaxRetryAfter || cfg.RetryAfter%time.Second != 0 {
		errs = append(errs, fmt.Errorf("RetryAfter %s must be whole seconds from 1s to %s", cfg.RetryAfter, MaxRetryAfter))
	}
	if cfg.IdleTimeout > 0 && cfg.RetryAfter >= cfg.IdleTimeout {
		errs = append(errs, fmt.Errorf("RetryAfter %s must be shorter than the server's IdleTimeout %s", cfg.RetryAfter, cfg.IdleTimeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("deviceapi: invalid config: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &API{
		cfg:        cfg,
		svc:        cfg.Provisioner,
		log:        cfg.Logger,
		now:        cfg.Now,
		rand:       cfg.Rand,
		retryAfter: retryAfterSeconds(cfg.RetryAfter, 0),
		bodyLog:    ratelog.New(cfg.Logger, devicewire.FaultLogLines, devicewire.FaultLogInterval),
		maxWait:    maxWait(cfg.IdleTimeout),
	}, nil
}

// MaxBodyBytes is the body limit in force: an outer limit (internal/api's)
// must not be smaller, or payloads within MaxPayloadBytes are refused
// with 413.
func (a *API) MaxBodyBytes() int64 { return a.cfg.MaxBodyBytes }

// Routes adds the device routes to r (it calls only Put, Get and Post, so
// it can run after r's middleware is set, as internal/api's Mount requires):
//
//	PUT  /{idScope}/registrations/{registrationId}/register
//	GET  /{idScope}/registrations/{registrationId}/operations/{operationId}
//	POST /{idScope}/registrations/{registrationId}
func (a *API) Routes(r chi.Router) {
	r.Put("/{idScope}/registrations/{registrationId}/register", a.register)
	r.Get("/{idScope}/registrations/{registrationId}/operations/{operationId}", a.operation)
	r.Post("/{idScope}/registrations/{registrationId}", a.status)
}

// Handler is a router with only the device routes, for a listener of its
// own.
func (a *API) Handler() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		a.writeError(w, req, fmt.Errorf("%w: no such route", port.ErrNotFound))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		a.writeError(w, req, fmt.Errorf("%w: method not allowed", ErrBadRequest))
	})
	a.Routes(r)
	return r
}

// pathParam is a path segment, percent-decoded. Routers that route on the
// raw path (chi without internal/api's canonicalPath) hand segments over
// encoded (the C SDK sends sym%3adev); routers that decoded already hand
// over IDs without '%', which decoding leaves alone.
func pathParam(r *http.Request, name string) (string, error) {
	v, err := url.PathUnescape(chi.URLParam(r, name))
	if err != nil {
		return "", badRequest("path segment %s is not valid percent-encoding", name)
	}
	return v, nil
}

// common checks what every device route needs and builds the request
// with its credentials.
func (a *API) common(r *http.Request) (*port.Request, error) {
	scope, err := pathParam(r, "idScope")
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(scope, a.cfg.IDScope) {
		return nil, errScopeNotFound
	}
	if v := r.URL.Query().Get("api-version"); !dps.SupportedAPIVersion(v) {
		return nil, badRequest("api-version must be one of %s", strings.Join(dps.APIVersions, ", "))
	}
	regID, err := pathParam(r, "registrationId")
	if err != nil {
		return nil, err
	}
	if err := enrollment.ValidateRegistrationID(regID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	req := &port.Request{IDScope: a.cfg.IDScope, RegistrationID: regID, Authorization: r.Header.Get("Authorization"), RemoteAddr: r.RemoteAddr, RTT: requestRTT(r.Context()), Transport: "https"}
	if r.TLS != nil {
		req.ClientCertificates = r.TLS.PeerCertificates
	}
	return req, nil
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	req, form, err := a.registerRequest(w, r, true)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	op, err := a.svc.Register(r.Context(), req)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if a.cfg.AzureCompatible202 || op.Status == enrollment.RegistrationAssigning {
		a.accepted(w, r, req, op.OperationID)
		return
	}
	a.writeJSON(w, r, http.StatusOK, devicewire.OperationStatusIn(op, form))
}

// accepted answers 202 {operationId, status: assigning} with Retry-After
// and the Location of the operation.
func (a *API) accepted(w http.ResponseWriter, r *http.Request, req *port.Request, opID string) {
	loc := "/" + url.PathEscape(a.cfg.IDScope) + "/registrations/" + url.PathEscape(req.RegistrationID) +
		"/operations/" + url.PathEscape(opID) + "?api-version=" + url.QueryEscape(r.URL.Query().Get("api-version"))
	w.Header().Set("Location", loc)
	w.Header().Set("Retry-After", a.retryAfter)
	a.writeJSON(w, r, http.StatusAccepted, &RegistrationOperationStatus{OperationID: opID, Status: enrollment.RegistrationAssigning})
}

func (a *API) operation(w http.ResponseWriter, r *http.Request) {
	req, err := a.common(r)
	var opID string
	if err == nil {
		opID, err = pathParam(r, "operationId")
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	// The Node SDK sends {} with the GET, the C SDK nothing: read it
	// (within the limits) and ignore it.
	if _, err := a.readBody(w, r); err != nil {
		a.writeError(w, r, err)
		return
	}
	op, err := a.svc.OperationStatus(r.Context(), req, opID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if op.Status == enrollment.RegistrationAssigning {
		// Not before the poll limit admits the next poll (op.RetryAfter).
		ra := a.retryAfter
		if op.RetryAfter > a.cfg.RetryAfter {
			ra = retryAfterSeconds(op.RetryAfter, a.maxWait)
		}
		w.Header().Set("Retry-After", ra)
		a.writeJSON(w, r, http.StatusAccepted, operationStatus(op))
		return
	}
	a.writeJSON(w, r, http.StatusOK, operationStatus(op))
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	req, _, err := a.registerRequest(w, r, false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	rec, err := a.svc.Status(r.Context(), req)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeJSON(w, r, http.StatusOK, resultOf(rec, nil))
}

// trackingID is the outer router's request ID (internal/api sets
// x-ms-request-id), else a fresh one.
func (a *API) trackingID(w http.ResponseWriter) string {
	if id := w.Header().Get("x-ms-request-id"); id != "" {
		return id
	}
	var b [16]byte
	a.randM.Lock()
	_, err := io.ReadFull(a.rand, b[:])
	a.randM.Unlock()
	if err != nil {
		return strconv.FormatInt(a.now().UnixNano(), 16)
	}
	id := hex.EncodeToString(b[:])
	w.Header().Set("x-ms-request-id", id)
	return id
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if a.writeChallenge(w, r, err) {
		return
	}
	fault := asBodyFault(r, err)
	if fault != nil {
		err = fault
	}
	status, code, msg := classify(err)
	id := a.trackingID(w)
	switch {
	case fault != nil:
		// The device's fault, whatever the request's context says (a
		// failed body read cancels it too): never a server fault.
		a.logBodyFault(w, r, fault, id)
	case errors.Is(err, store.ErrBusy):
		// Transient contention, not a fault: the device retries.
		a.log.WarnContext(r.Context(), "device request refused: store busy", "tracking_id", id, "status", status, "error", err)
	case status >= 500:
		a.log.ErrorContext(r.Context(), "device request failed", "tracking_id", id, "status", status, "error", err)
	}
	switch d := limits.RetryAfterOf(err); {
	case status == http.StatusTooManyRequests && d > 0:
		w.Header().Set("Retry-After", retryAfterSeconds(d, a.maxWait))
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("x-ms-error-code", strconv.Itoa(code))
	a.writeJSON(w, r, status, dps.NewErrorBody(code, id, msg, a.now()))
}

var (
	maxWait           = devicewire.MaxWait
	retryAfterSeconds = devicewire.RetryAfterSeconds
)

// writeJSON answers with the content type the Node SDK needs to parse a
// body at all.
func (a *API) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		a.log.ErrorContext(r.Context(), "encode answer", "error", err)
		b = []byte(fmt.Sprintf(`{"errorCode":%d,"message":%q}`, dps.CodeInternal, msgInternal))
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
