package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// step is one scripted answer of the fake service.
type step struct {
	status int
	header map[string]string
	body   string
	// drop closes the connection without answering (a network error).
	drop bool
}

// seen is what the fake received.
type seen struct {
	method, path, rawPath, query, auth, body, remote string
	header                                           http.Header
	peer                                             []*x509.Certificate
}

// fakeService answers with its steps in order, repeating the last one,
// or with handle when set.
type fakeService struct {
	srv    *httptest.Server
	mu     sync.Mutex
	steps  []step
	handle func(s seen) step
	reqs   []seen
}

func newFake(t *testing.T, tlsCfg *tls.Config, steps ...step) *fakeService {
	t.Helper()
	f := &fakeService{steps: steps}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	// Handshakes the tests make fail on purpose need no log.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsCfg != nil {
		f.srv.TLS = tlsCfg
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeService) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s := seen{method: r.Method, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery,
		auth: r.Header.Get("Authorization"), body: string(b), remote: r.RemoteAddr, header: r.Header.Clone()}
	if r.TLS != nil {
		s.peer = r.TLS.PeerCertificates
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, s)
	var st step
	switch {
	case f.handle != nil:
		st = f.handle(s)
	case len(f.steps) > 1:
		st, f.steps = f.steps[0], f.steps[1:]
	case len(f.steps) == 1:
		st = f.steps[0]
	default:
		st = step{status: 500}
	}
	f.mu.Unlock()
	if st.drop {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	for k, v := range st.header {
		w.Header().Set(k, v)
	}
	if st.body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(st.status)
	_, _ = io.WriteString(w, st.body)
}

func (f *fakeService) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func (f *fakeService) addr() string { return f.srv.Listener.Addr().String() }

func (f *fakeService) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

// fakeClock is Now and Sleep: sleeping advances the clock at once.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	// onSleep, when set, runs before each sleep returns.
	onSleep func()
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	f := c.onSleep
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

const testScope = "0ne0000TEST"

var testKey = []byte("0123456789abcdef0123456789abcdef")

// config is a symmetric-key configuration against f with a fake clock and
// no jitter.
func config(f *fakeService, clk *fakeClock) Config {
	return Config{
		Endpoint:       f.addr(),
		IDScope:        testScope,
		RegistrationID: "dev-1",
		SymmetricKey:   testKey,
		RootCAs:        f.roots(),
		Now:            clk.Now,
		Sleep:          clk.Sleep,
		Jitter:         func() float64 { return 0 },
	}
}

// assigned is a final answer.
func assigned(extra string) string {
	return `{"operationId":"op-1","status":"assigned","registrationState":{"registrationId":"dev-1","assignedHub":"hub-a.example.net","deviceId":"dev-1","status":"assigned","substatus":"initialAssignment"` + extra + `}}`
}

const assigningBody = `{"operationId":"op-1","status":"assigning"}`

func errBody(code int, msg string) string {
	return `{"errorCode":` + strconv.Itoa(code) + `,"trackingId":"trk-1","message":"` + msg + `","info":{},"timestampUtc":"2026-03-01T12:00:00Z"}`
}
