package clienttest

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// APIVersion is the only api-version the fake accepts.
const APIVersion = "2021-10-01"

// DefaultPageSize is the page size when the client sends no
// x-ms-max-item-count; small so that tests exercise paging.
const DefaultPageSize = 50

// Server is a running fake service API.
type Server struct {
	srv    *httptest.Server
	policy string
	key    []byte

	mu          sync.Mutex
	enrollments map[string]*enrollment.IndividualEnrollment
	groups      map[string]*enrollment.EnrollmentGroup
	regs        map[string]*enrollment.RegistrationState
	hubs        map[string]*enrollment.Hub
	policies    map[string]*enrollment.SharedAccessPolicy
	settings    enrollment.Settings
	etag        int
	intercept   func(w http.ResponseWriter, r *http.Request, next http.Handler)

	requests   atomic.Int64
	bulkCalls  atomic.Int64
	bulkCreate atomic.Int64
}

// NewServer starts a fake and stops it when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake that runs until Close, for harnesses without a
// testing.TB (testscript's Setup).
func Start() *Server {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s := &Server{
		policy:      enrollment.OwnerPolicyName,
		key:         key,
		enrollments: map[string]*enrollment.IndividualEnrollment{},
		groups:      map[string]*enrollment.EnrollmentGroup{},
		regs:        map[string]*enrollment.RegistrationState{},
		hubs:        map[string]*enrollment.Hub{},
		policies:    map[string]*enrollment.SharedAccessPolicy{},
		settings:    enrollment.Settings{IDScope: "0ne00000001", DefaultAllocationPolicy: enrollment.PolicyHashed},
	}
	s.policies[enrollment.Key(s.policy)] = &enrollment.SharedAccessPolicy{
		KeyName:      s.policy,
		PrimaryKey:   base64.StdEncoding.EncodeToString(key),
		SecondaryKey: newKey(),
		Rights:       strings.Join(enrollment.AllRights, ", "),
	}
	s.srv = httptest.NewUnstartedServer(s.routes())
	// Tests provoke TLS failures on purpose; their log lines are noise.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	return s
}

// HostName is host:port of the fake.
func (s *Server) HostName() string { return strings.TrimPrefix(s.srv.URL, "https://") }

// ConnectionString is the owner connection string of the fake.
func (s *Server) ConnectionString() string {
	return "HostName=" + s.HostName() + ";SharedAccessKeyName=" + s.policy + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(s.key)
}

// CertPool trusts the fake's TLS certificate.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// CAPEM is the fake's TLS certificate in PEM, for --ca-file.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Close stops the fake (it also stops when the test ends).
func (s *Server) Close() { s.srv.Close() }

// Intercept puts f in front of every request; f decides whether to call
// next. nil removes it.
func (s *Server) Intercept(f func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	s.mu.Lock()
	s.intercept = f
	s.mu.Unlock()
}

// Stats of the fake.
type Stats struct {
	// Requests counts every request, intercepted or not.
	Requests int64
	// BulkCalls counts bulk calls that reached the fake's handlers.
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
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.enrollments))
	for _, e := range s.enrollments {
		ids = append(ids, e.RegistrationID)
	}
	slices.Sort(ids)
	return ids
}

// Enrollment returns a copy of the stored enrollment, keys included.
func (s *Server) Enrollment(id string) (*enrollment.IndividualEnrollment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.enrollments[enrollment.Key(id)]
	if !ok {
		return nil, false
	}
	return clone(e), true
}

// AddRegistration stores a registration record, as a device registering
// would.
func (s *Server) AddRegistration(r enrollment.RegistrationState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.ETag = s.nextETag()
	s.regs[enrollment.Key(r.RegistrationID)] = &r
}

func (s *Server) nextETag() string {
	s.etag++
	return fmt.Sprintf("\"%08x\"", s.etag)
}

func newKey() string {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func clone[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return &out
}

// apiError writes the DPS error format.
func apiError(w http.ResponseWriter, status, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-error-code", strconv.Itoa(code))
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errorCode":    code,
		"trackingId":   "fake-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"message":      fmt.Sprintf(format, args...),
		"timestampUtc": time.Now().UTC().Format(time.RFC3339),
	})
}

// Fail writes a DPS error answer; for Intercept functions.
func Fail(w http.ResponseWriter, status int) {
	apiError(w, status, status*1000+1, "injected %d", status)
}

// DropConnection closes the client's connection without an answer; for
// Intercept functions.
func DropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("clienttest: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, map[string]string{"status": "ok"}) })

	api := http.NewServeMux()
	api.HandleFunc("GET /enrollments/{id}", s.getEnrollment)
	api.HandleFunc("PUT /enrollments/{id}", s.putEnrollment)
	api.HandleFunc("DELETE /enrollments/{id}", s.deleteEnrollment)
	api.HandleFunc("POST /enrollments/{id}/attestationmechanism", s.enrollmentKeys)
	api.HandleFunc("POST /enrollments/query", s.queryEnrollments)
	api.HandleFunc("POST /enrollments", s.bulkEnrollments)
	api.HandleFunc("GET /enrollmentGroups/{id}", s.getGroup)
	api.HandleFunc("PUT /enrollmentGroups/{id}", s.putGroup)
	api.HandleFunc("DELETE /enrollmentGroups/{id}", s.deleteGroup)
	api.HandleFunc("POST /enrollmentGroups/{id}/attestationmechanism", s.groupKeys)
	api.HandleFunc("POST /enrollmentGroups/query", s.queryGroups)
	api.HandleFunc("POST /enrollmentGroups", s.bulkGroups)
	api.HandleFunc("GET /registrations/{id}", s.getRegistration)
	api.HandleFunc("DELETE /registrations/{id}", s.deleteRegistration)
	api.HandleFunc("POST /registrations/query", s.queryRegistrations)
	api.HandleFunc("POST /registrations/{id}/query", s.queryRegistrations)
	api.HandleFunc("GET /hubs", s.listHubs)
	api.HandleFunc("GET /hubs/{id}", s.getHub)
	api.HandleFunc("PUT /hubs/{id}", s.putHub)
	api.HandleFunc("DELETE /hubs/{id}", s.deleteHub)
	api.HandleFunc("GET /policies", s.listPolicies)
	api.HandleFunc("GET /policies/{id}", s.getPolicy)
	api.HandleFunc("PUT /policies/{id}", s.putPolicy)
	api.HandleFunc("DELETE /policies/{id}", s.deletePolicy)
	api.HandleFunc("POST /policies/{id}/keys", s.policyKeys)
	api.HandleFunc("GET /settings", s.getSettings)
	api.HandleFunc("PUT /settings", s.putSettings)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, 404000, "no route %s %s", r.Method, r.URL.Path)
	})
	mux.Handle("/", s.checked(api))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		f := s.intercept
		s.mu.Unlock()
		if f != nil {
			f(w, r, mux)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// checked verifies api-version and the SAS token.
func (s *Server) checked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("api-version"); v != APIVersion {
			apiError(w, http.StatusBadRequest, 400001, "unsupported api-version %q", v)
			return
		}
		if err := s.verify(r.Header.Get("Authorization")); err != nil {
			apiError(w, http.StatusUnauthorized, 401002, "unauthorized: %v", err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) verify(auth string) error {
	tok, ok := strings.CutPrefix(auth, "SharedAccessSignature ")
	if !ok {
		return fmt.Errorf("no SharedAccessSignature")
	}
	q, err := url.ParseQuery(tok)
	if err != nil {
		return err
	}
	sr, sig, se, skn := q.Get("sr"), q.Get("sig"), q.Get("se"), q.Get("skn")
	if sr != s.HostName() {
		return fmt.Errorf("sr %q is not the host name", sr)
	}
	exp, err := strconv.ParseInt(se, 10, 64)
	if err != nil || time.Unix(exp, 0).Before(time.Now()) {
		return fmt.Errorf("expired")
	}
	s.mu.Lock()
	p := s.policies[enrollment.Key(skn)]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("unknown policy")
	}
	for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
		key, _ := base64.StdEncoding.DecodeString(k)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(sr + "\n" + se))
		if hmac.Equal([]byte(base64.StdEncoding.EncodeToString(m.Sum(nil))), []byte(sig)) {
			return nil
		}
	}
	return fmt.Errorf("bad signature")
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, 400004, "malformed body: %v", err)
		return false
	}
	return true
}

// page answers one page of sorted items, with x-ms-continuation only when
// another page follows (the continuation is the next index).
func page[T any](w http.ResponseWriter, r *http.Request, items []T) {
	n := DefaultPageSize
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			apiError(w, http.StatusBadRequest, 400004, "bad x-ms-max-item-count")
			return
		}
	}
	start := 0
	if v := r.Header.Get("x-ms-continuation"); v != "" {
		var err error
		if start, err = strconv.Atoi(v); err != nil || start < 0 || start > len(items) {
			apiError(w, http.StatusBadRequest, 400004, "bad continuation")
			return
		}
	}
	end := min(start+n, len(items))
	if end < len(items) {
		w.Header().Set("x-ms-continuation", strconv.Itoa(end))
	}
	reply(w, http.StatusOK, items[start:end])
}

func sorted[T any](m map[string]*T) []*T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*T, len(keys))
	for i, k := range keys {
		out[i] = clone(m[k])
	}
	return out
}

// precondition checks If-Match against the stored etag ("" = absent), and
// If-None-Match: * (create only: 409 when it exists).
func precondition(w http.ResponseWriter, r *http.Request, stored string, exists bool) bool {
	if r.Header.Get("If-None-Match") == "*" && exists {
		apiError(w, http.StatusConflict, 409201, "already exists")
		return false
	}
	im := r.Header.Get("If-Match")
	switch {
	case im == "":
		return true
	case im == "*" && exists, exists && im == stored:
		return true
	case !exists && im != "*":
		apiError(w, http.StatusNotFound, 404201, "not found")
		return false
	}
	apiError(w, http.StatusPreconditionFailed, 412002, "etag mismatch")
	return false
}

func stamp(v *enrollment.Versioned, old *enrollment.Versioned, etag string) {
	now := time.Now().UTC()
	v.ETag = etag
	v.LastUpdatedDateTimeUTC = &now
	v.CreatedDateTimeUTC = &now
	if old != nil {
		v.CreatedDateTimeUTC = cmp.Or(old.CreatedDateTimeUTC, &now)
	}
}

func fillKeys(a *enrollment.AttestationMechanism) {
	if a != nil && a.Type == enrollment.AttestationSymmetricKey {
		if a.SymmetricKey == nil {
			a.SymmetricKey = &enrollment.SymmetricKeyAttestation{}
		}
		a.SymmetricKey.PrimaryKey = cmp.Or(a.SymmetricKey.PrimaryKey, newKey())
		a.SymmetricKey.SecondaryKey = cmp.Or(a.SymmetricKey.SecondaryKey, newKey())
	}
}

func withoutKeys(a *enrollment.AttestationMechanism) {
	if a != nil && a.SymmetricKey != nil {
		a.SymmetricKey = &enrollment.SymmetricKeyAttestation{}
	}
}
