package console_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/console"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// clock is a settable clock shared by the console and the API.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a console and the service API on one TLS router over a real
// bbolt store, wired as zdps serve wires them.
type env struct {
	t       testing.TB
	srv     *httptest.Server
	host    string
	st      *store.Store
	uc      api.UseCases
	trail   *audit.Trail
	backend store.Backend
	clock   *clock
	cons    *console.Console
}

// Policies the tests sign in with.
const (
	ownerPolicy  = "owner"
	viewerPolicy = "viewer"
)

var policyKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func newEnv(t testing.TB, cfg console.Config) *env {
	t.Helper()
	b := testbackend.Bolt(t)
	return newEnvOn(t, b, cfg)
}

func newEnvOn(t testing.TB, b store.Backend, cfg console.Config) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	clk := &clock{t: time.Now().UTC()}
	l, err := audit.New(audit.Config{Backend: b, Signer: audit.NewHMACSigner([]byte("0123456789abcdef0123456789abcdef")), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	trail := &audit.Trail{Log: l, Buffer: l.NewBuffer(0)}
	st := store.New(b, nil)
	audited := store.New(audit.Changes(b, trail), nil)
	m, err := manage.New(manage.Config{Store: audited, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	service, err := api.New(api.Config{Store: st, HostName: host, Logger: log, UseCases: api.UseCasesOf(m), Trail: trail, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	uc := service.UseCases()
	cfg.Backend, cfg.Store, cfg.Host = b, st, service
	cfg.Enrollments, cfg.Groups, cfg.Registrations, cfg.Hubs, cfg.Certificates = uc.Enrollments, uc.Groups, uc.Registrations, uc.Resources, uc.Certificates
	cfg.KeyReads, cfg.Trail = trail, l
	cfg.Alerts = &detect.Alerts{Backend: b, Recorder: l}
	if cfg.Posture == nil {
		src := posture.NewStoreSource(st)
		cfg.Posture = func(ctx context.Context) (*posture.Report, error) {
			return posture.Compute(ctx, src, posture.Options{})
		}
	}
	cfg.Now = clk.Now
	cons, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := service.NewRouter()
	service.Routes(r)
	cons.Routes(r)
	srv := httptest.NewUnstartedServer(r)
	srv.Listener.Close()
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, host: host, st: st, uc: uc, trail: trail, backend: b, clock: clk, cons: cons}
	for name, rights := range map[string]string{
		ownerPolicy:  strings.Join(enrollment.AllRights, ", "),
		viewerPolicy: enrollment.RightEnrollmentRead + ", " + enrollment.RightRegistrationStatusRead,
	} {
		if _, err := st.Policies.Put(context.Background(), &enrollment.SharedAccessPolicy{KeyName: name, PrimaryKey: policyKey, SecondaryKey: policyKey, Rights: rights}, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// browser is a client with a cookie jar that does not follow redirects,
// so each answer's status is seen.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return &browser{e: e, c: c}
}

func (e *env) url(path string) string { return "https://" + e.host + path }

// link asks for a sign-in link as the CLI does: POST /console/links with
// a service SAS of policy.
func (e *env) link(policy string) string {
	e.t.Helper()
	key, _ := base64.StdEncoding.DecodeString(policyKey)
	req, _ := http.NewRequest(http.MethodPost, e.url("/console/links?api-version=2021-10-01"), nil)
	req.Header.Set("Authorization", sas.Build(key, e.host, policy, e.clock.Now().Add(time.Hour)))
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("POST /console/links: %d %s", resp.StatusCode, b)
	}
	var l console.LinkAnswer
	if err := json.Unmarshal(b, &l); err != nil {
		e.t.Fatal(err)
	}
	return l.URL
}

// signIn opens a fresh link of policy and presses its button.
func (e *env) signIn(policy string) *browser {
	e.t.Helper()
	b := e.browser()
	link := e.link(policy)
	if st, body := b.get(link); st != http.StatusOK || !strings.Contains(body, `id="signin"`) {
		e.t.Fatalf("link page: %d %s", st, body)
	}
	resp := b.post(link, url.Values{})
	if resp.status != http.StatusSeeOther || resp.location != "/console" {
		e.t.Fatalf("sign in: %d %s", resp.status, resp.body)
	}
	b.get("/console") // the session's CSRF token
	return b
}

type answer struct {
	status   int
	body     string
	location string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(u string) (int, string) {
	b.e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.e.url(u)
	}
	resp, err := b.c.Get(u)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return resp.StatusCode, string(body)
}

// post sends a form as a browser does: with Origin and, unless the form
// sets its own, the session's CSRF token.
func (b *browser) post(u string, form url.Values) answer {
	b.e.t.Helper()
	return b.postWith(u, form, "https://"+b.e.host)
}

func (b *browser) postWith(u string, form url.Values, origin string) answer {
	b.e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.e.url(u)
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location")}
}

var etagRE = regexp.MustCompile(`name="etag" value="([^"]+)"`)

func etagOf(t *testing.T, body string) string {
	t.Helper()
	m := etagRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no etag field in page:\n%s", body)
	}
	return m[1]
}

func regexpMust(expr string) *regexp.Regexp { return regexp.MustCompile(expr) }
