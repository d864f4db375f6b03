package clienttest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/instance"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

// APIVersion is the api-version the client sends.
const APIVersion = "2021-10-01"

// DefaultPageSize caps query pages, small so that tests exercise paging.
const DefaultPageSize = 50

// Server is a running service API.
type Server struct {
	srv *httptest.Server
	st  *store.Store
	cs  string

	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request, next http.Handler)

	requests   atomic.Int64
	bulkCalls  atomic.Int64
	bulkCreate atomic.Int64
}

// NewServer starts a server and stops it when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server that runs until Close, for harnesses without a
// testing.TB (testscript's Setup). It panics if it cannot start.
func Start() *Server {
	s, err := start()
	if err != nil {
		panic(err)
	}
	return s
}

func start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := ln.Addr().String()
	st := store.New(memory.New(), nil)
	inst, err := instance.Bootstrap(context.Background(), st, instance.Config{HostName: host, IDScope: "0ne00000001"})
	if err != nil {
		return nil, err
	}
	// The service API with its use cases, as cmd/zdps wires it; no CA,
	// so no revocation either.
	m, err := manage.New(manage.Config{Store: st})
	if err != nil {
		return nil, err
	}
	a, err := api.New(api.Config{Store: st, HostName: host, Logger: slog.New(slog.DiscardHandler), MaxPageSize: DefaultPageSize, UseCases: api.UseCasesOf(m)})
	if err != nil {
		return nil, err
	}
	s := &Server{st: st, cs: inst.ConnectionString}
	s.srv = httptest.NewUnstartedServer(s.front(s.counted(a.Handler())))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	// Tests provoke TLS failures on purpose; their log lines are noise.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	return s, nil
}

// front runs the interceptor, if any, before the API.
func (s *Server) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		f := s.intercept
		s.mu.Unlock()
		if f != nil {
			f(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// counted counts bulk calls that reach the API and the items their create
// mode stored (items sent minus items refused).
func (s *Server) counted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || (r.URL.Path != "/enrollments" && r.URL.Path != "/enrollments/") {
			next.ServeHTTP(w, r)
			return
		}
		s.bulkCalls.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			Fail(w, http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var op struct {
			Mode        string            `json:"mode"`
			Enrollments []json.RawMessage `json:"enrollments"`
		}
		var res enrollment.BulkOperationResult
		if json.Unmarshal(body, &op) == nil && op.Mode == enrollment.BulkCreate && rec.Code == http.StatusOK &&
			json.Unmarshal(rec.Body.Bytes(), &res) == nil {
			s.bulkCreate.Add(int64(len(op.Enrollments) - len(res.Errors)))
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// HostName is host:port of the server.
func (s *Server) HostName() string { return s.srv.Listener.Addr().String() }

// ConnectionString is the owner connection string.
func (s *Server) ConnectionString() string { return s.cs }

// CertPool trusts the server's TLS certificate.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// CAPEM is the server's TLS certificate in PEM, for --ca-file.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Close stops the server (it also stops when the test ends).
func (s *Server) Close() { s.srv.Close() }

// Intercept puts f in front of every request; f decides whether to call
// next. nil removes it.
func (s *Server) Intercept(f func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	s.mu.Lock()
	s.intercept = f
	s.mu.Unlock()
}

// Stats of the server.
type Stats struct {
	// Requests counts every request, intercepted or not.
	Requests int64
	// BulkCalls counts bulk enrollment calls that reached the API.
	BulkCalls int64
	// BulkCreated counts items the bulk create mode stored.
	BulkCreated int64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), BulkCalls: s.bulkCalls.Load(), BulkCreated: s.bulkCreate.Load()}
}

// EnrollmentIDs returns the stored registration IDs, sorted.
func (s *Server) EnrollmentIDs() []string {
	var ids []string
	cont := ""
	for {
		page, next, err := s.st.Enrollments.List(context.Background(), cont, 1000)
		if err != nil {
			panic(err)
		}
		for _, e := range page {
			ids = append(ids, e.RegistrationID)
		}
		if next == "" {
			break
		}
		cont = next
	}
	slices.Sort(ids)
	return ids
}

// Enrollment returns the stored enrollment, keys included.
func (s *Server) Enrollment(id string) (*enrollment.IndividualEnrollment, bool) {
	e, err := s.st.Enrollments.Get(context.Background(), id)
	return e, err == nil
}

// AddRegistration stores a registration record, as a device registering
// would.
func (s *Server) AddRegistration(r enrollment.Registration) {
	if _, err := s.st.Registrations.Put(context.Background(), &r, store.Condition{}); err != nil {
		panic(err)
	}
}

// Fail answers with status and a DPS-shaped error body, as the server does.
func Fail(w http.ResponseWriter, status int) {
	code := status*1000 + 1
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-error-code", fmt.Sprint(code))
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errorCode": code, "trackingId": "injected", "message": fmt.Sprintf("injected %d", status),
		"timestampUtc": time.Now().UTC().Format(time.RFC3339),
	})
}

// DropConnection closes the connection without an answer.
func DropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("clienttest: response writer cannot be hijacked")
	}
	if conn, _, err := hj.Hijack(); err == nil {
		_ = conn.Close()
	}
}
