package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// testVersion is what the Node service SDK sends.
const testVersion = "2021-10-01"

// testNow is the fixed clock of the tests; tokens expire relative to it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// syncBuffer collects the logs of concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one zdps service API on a real bbolt file behind a real TLS
// server, with an owner policy and a read-only policy.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	api      *API
	rev      *revocation.Revocations
	st       *store.Store
	host     string
	logs     *syncBuffer
	owner    *enrollment.SharedAccessPolicy
	reader   *enrollment.SharedAccessPolicy
	ownerTok string
}

// testConfig is the API's Config and what cmd/zdps wires around it (the
// management use cases, revocation, the CRL), so that one tweak of a test
// sets either.
type testConfig struct {
	Config
	CA                        *ca.CA
	KeepCertificatesOnDisable bool
	CheckWebhookURL           func(url string) error
}

func newEnv(t *testing.T, tweak ...func(*testConfig)) *env {
	t.Helper()
	b := testbackend.Bolt(t)
	st := store.New(b, func() time.Time { return testNow })
	e := &env{t: t, st: st, logs: &syncBuffer{}}
	e.owner = e.seedPolicy(enrollment.OwnerPolicyName, strings.Join(enrollment.AllRights, ", "))
	e.reader = e.seedPolicy("reader", enrollment.RightEnrollmentRead)

	e.srv = httptest.NewUnstartedServer(nil)
	e.host = e.srv.Listener.Addr().String()
	cfg := testConfig{Config: Config{
		Store:    st,
		HostName: e.host,
		Logger:   slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      func() time.Time { return testNow },
	}}
	for _, f := range tweak {
		f(&cfg)
	}
	e.api, e.rev = wire(t, cfg)
	e.srv.Config.Handler = e.api.Handler()
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.ownerTok = e.token(e.owner, e.host, time.Hour)
	return e
}

// wire builds the API with its use cases, revocation and CRL as cmd/zdps
// does.
func wire(t *testing.T, tc testConfig) (*API, *revocation.Revocations) {
	t.Helper()
	cfg := tc.Config
	rev, err := revocation.NewRevocations(cfg.Store, revocation.RevocationConfig{Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	mcfg := manage.Config{Store: cfg.Store, Logger: cfg.Logger, Now: cfg.Now, CheckWebhookURL: tc.CheckWebhookURL}
	if !tc.KeepCertificatesOnDisable {
		mcfg.Revocations = rev
	}
	m, err := manage.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.UseCases = UseCasesOf(m)
	if tc.CA != nil {
		cfg.CA = tc.CA
		if cfg.CRL, err = revocation.NewCRLPublisher(rev, testCRLSigner{tc.CA}, ca.DefaultCRLValidity); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, rev
}

// testCRLSigner adapts the CA to the CRL publisher, as cmd/zdps does.
type testCRLSigner struct{ ca *ca.CA }

func (s testCRLSigner) CRL(entries []revocation.Entry, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	revoked := make([]ca.Revoked, len(entries))
	for i, e := range entries {
		revoked[i] = ca.Revoked{Serial: e.Serial, RevokedAt: e.RevokedAt, Reason: e.Reason}
	}
	return s.ca.CRL(revoked, number, nextUpdate)
}

func (e *env) seedPolicy(name, rights string) *enrollment.SharedAccessPolicy {
	e.t.Helper()
	p := &enrollment.SharedAccessPolicy{KeyName: name, Rights: rights}
	if err := p.GenerateMissingKeys(rand.Reader); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Policies.Put(context.Background(), p, store.Condition{}); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// token signs a service SAS with the policy's primary key.
func (e *env) token(p *enrollment.SharedAccessPolicy, sr string, ttl time.Duration) string {
	return tokenWith(e.t, p.PrimaryKey, sr, p.KeyName, testNow.Add(ttl))
}

func tokenWith(t *testing.T, b64key, sr, keyName string, expiry time.Time) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(b64key)
	if err != nil {
		t.Fatal(err)
	}
	return sas.Build(key, sr, keyName, expiry)
}

// reply is a finished response with its body read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errBody decodes a DPS error body and checks its shape and headers.
func (r reply) errBody(t *testing.T) dps.ErrorBody {
	t.Helper()
	var eb dps.ErrorBody
	r.decode(t, &eb)
	if eb.ErrorCode < 100000 || eb.ErrorCode > 999999 || eb.ErrorCode/1000 != r.status {
		t.Errorf("errorCode %d does not fit status %d", eb.ErrorCode, r.status)
	}
	if eb.TrackingID == "" || eb.TrackingID != r.header.Get("x-ms-request-id") {
		t.Errorf("trackingId %q, x-ms-request-id %q", eb.TrackingID, r.header.Get("x-ms-request-id"))
	}
	if eb.Message == "" || eb.TimestampUTC == "" || eb.Info == nil {
		t.Errorf("incomplete error body %s", r.body)
	}
	if got := r.header.Get("x-ms-error-code"); got != fmt.Sprint(eb.ErrorCode) {
		t.Errorf("x-ms-error-code %q, body errorCode %d", got, eb.ErrorCode)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	return eb
}

// req describes one call; zero fields take the defaults (owner token,
// api-version appended).
type req struct {
	method, path string
	body         any // string, []byte or a value to marshal
	token        string
	noToken      bool
	header       map[string]string
}

func (e *env) do(q req) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := q.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	u := e.srv.URL + q.path
	if !strings.Contains(q.path, "api-version") && !strings.HasPrefix(q.path, "/healthz") {
		if strings.Contains(q.path, "?") {
			u += "&api-version=" + testVersion
		} else {
			u += "?api-version=" + testVersion
		}
	}
	hr, err := http.NewRequest(q.method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	switch {
	case q.noToken:
	case q.token != "":
		hr.Header.Set("Authorization", q.token)
	default:
		hr.Header.Set("Authorization", e.ownerTok)
	}
	for k, v := range q.header {
		hr.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(body) > 0 && resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		e.t.Errorf("%s %s: Content-Type %q", q.method, q.path, resp.Header.Get("Content-Type"))
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

// must checks the status of a call.
func (e *env) must(q req, status int) reply {
	e.t.Helper()
	r := e.do(q)
	if r.status != status {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", q.method, q.path, r.status, status, r.body)
	}
	return r
}

// dump is every key and ETag in the store, to prove a refused request
// changed nothing.
func (e *env) dump() string {
	e.t.Helper()
	var lines []string
	err := e.st.Backend.View(context.Background(), func(tx store.Tx) error {
		for _, b := range []store.Bucket{store.BucketEnrollments, store.BucketGroups, store.BucketRegistrations, store.BucketHubs, store.BucketPolicies, store.BucketSettings, store.IndexRegistrationsByGroup, store.IndexRegistrationsByHub} {
			items, err := tx.Scan(context.Background(), b, "", "", 0)
			if err != nil {
				return err
			}
			for _, it := range items {
				lines = append(lines, fmt.Sprintf("%s/%q %s %x", b, it.Key, it.ETag, it.Value))
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func symEnrollment(id string, keys ...string) map[string]any {
	sk := map[string]any{}
	if len(keys) > 0 {
		sk["primaryKey"] = keys[0]
	}
	if len(keys) > 1 {
		sk["secondaryKey"] = keys[1]
	}
	return map[string]any{
		"registrationId": id,
		"attestation":    map[string]any{"type": "symmetricKey", "symmetricKey": sk},
	}
}

func symGroup(id string, keys ...string) map[string]any {
	m := symEnrollment(id, keys...)
	delete(m, "registrationId")
	m["enrollmentGroupId"] = id
	return m
}

// newKey is a valid 32-byte base64 key.
func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func slogJSON(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
