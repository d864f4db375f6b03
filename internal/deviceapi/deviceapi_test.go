package deviceapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/attestation/symmetric"
	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/deviceapi"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/symkey"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

const idScope = "0ne0000ABCD"

// Keys of the fixtures (64 random-looking bytes, base64).
var (
	primaryKey   = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("p1"), 32))
	secondaryKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("s2"), 32))
	groupKey     = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("g3"), 32))
	otherKey     = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x4"), 32))
)

func key(t testing.TB, b64 string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// syncBuffer collects log output from concurrent handlers.
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

type server struct {
	svc  *provisioning.Service
	st   *store.Store
	ca   *ca.CA
	srv  *httptest.Server
	logs *syncBuffer
}

type options struct {
	azure202 bool
	viaAPI   bool // mount on internal/api's router, as zdps serve does
	maxBody  int64
	// maxPayload and bodyTimeout go to Config (body_test.go).
	maxPayload  int64
	bodyTimeout time.Duration
	// alloc replaces the hashed policy; assignWait and now go to the
	// provisioning service (async_test.go).
	alloc      allocation.Policy
	assignWait time.Duration
	now        func() time.Time
	limits     limits.Limits
}

func newServer(t *testing.T, o options) *server {
	t.Helper()
	ctx := context.Background()
	b := testbackend.Bolt(t)
	s := &server{st: store.New(b, nil), logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	s.ca, err = ca.New(ctx, ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: bytes.Repeat([]byte{9}, 32), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := caissuer.New(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	att, err := symkey.NewAttestor(s.st, symmetric.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var alloc allocation.Policy = hashed.New()
	if o.alloc != nil {
		alloc = o.alloc
	}
	svc, err := provisioning.New(provisioning.Config{
		Store:      s.st,
		Attestors:  map[string]port.Attestor{enrollment.AttestationSymmetricKey: att},
		Allocator:  alloc,
		Issuer:     iss,
		Logger:     logger,
		Now:        o.now,
		AssignWait: o.assignWait,
		Limits:     o.limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.svc = svc
	t.Cleanup(func() { // after the server closed, before the store does
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Wait(ctx); err != nil {
			t.Error(err)
		}
	})
	dev, err := deviceapi.New(deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: logger, AzureCompatible202: o.azure202, MaxBodyBytes: o.maxBody, MaxPayloadBytes: o.maxPayload, BodyTimeout: o.bodyTimeout, IdleTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	if o.viaAPI {
		a, err := api.New(api.Config{Store: s.st, HostName: "localhost", Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		a.Mount(dev.Routes)
		h = a.Handler()
	} else {
		r := chi.NewRouter()
		dev.Routes(r)
		h = r
	}
	s.srv = httptest.NewTLSServer(h)
	t.Cleanup(s.srv.Close)

	for _, hub := range []string{"hub-a.example.net", "hub-b.example.net", "hub-c.example.net"} {
		if _, err := s.st.Hubs.Put(ctx, &enrollment.Hub{Name: hub, AllocationWeight: 1}, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	sym := func(p, s string) *enrollment.AttestationMechanism {
		return &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: p, SecondaryKey: s}}
	}
	for _, e := range []*enrollment.IndividualEnrollment{
		{RegistrationID: "dev-1", DeviceID: "thing-1", Spec: enrollment.Spec{Attestation: sym(primaryKey, secondaryKey)}},
		{RegistrationID: "dev-2", Spec: enrollment.Spec{Attestation: sym(otherKey, otherKey)}},
		{RegistrationID: "sym:dev.1_x", Spec: enrollment.Spec{Attestation: sym(primaryKey, secondaryKey)}},
		{RegistrationID: "off-1", Spec: enrollment.Spec{Attestation: sym(primaryKey, secondaryKey), ProvisioningStatus: enrollment.StatusDisabled}},
		{RegistrationID: "grp-off-ind", Spec: enrollment.Spec{Attestation: sym(primaryKey, secondaryKey), ProvisioningStatus: enrollment.StatusDisabled}},
	} {
		if _, err := s.st.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []*enrollment.EnrollmentGroup{
		{EnrollmentGroupID: "g-on", Spec: enrollment.Spec{Attestation: sym(groupKey, "")}},
		{EnrollmentGroupID: "g-off", Spec: enrollment.Spec{Attestation: sym(otherKey, ""), ProvisioningStatus: enrollment.StatusDisabled}},
	} {
		if _, err := s.st.Groups.Put(ctx, g, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// token is a Node-style SAS: sr un-encoded.
func token(t testing.TB, k []byte, regID string, exp time.Time) string {
	return sas.Build(k, idScope+"/registrations/"+regID, "registration", exp)
}

func derived(t testing.TB, group, regID string) []byte {
	return sas.DeriveDeviceKey(key(t, group), regID)
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.status, a.body)
	}
	return m
}

func (s *server) do(t testing.TB, method, path, auth string, body []byte, hdr map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); len(b) > 0 && ct != "application/json; charset=utf-8" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func (s *server) register(t testing.TB, regID, auth string, body any) answer {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return s.do(t, http.MethodPut, "/"+idScope+"/registrations/"+regID+"/register?api-version=2019-03-31", auth, b, nil)
}

func (s *server) count(t testing.TB, b store.Bucket) int {
	t.Helper()
	n := 0
	err := s.st.Backend.View(context.Background(), func(tx store.Tx) error {
		items, err := tx.Scan(context.Background(), b, "", "", 0)
		n = len(items)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return n
}

func checkError(t testing.TB, a answer, status, code int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	m := a.json(t)
	if int(m["errorCode"].(float64)) != code || a.header.Get("x-ms-error-code") != fmt.Sprint(code) {
		t.Fatalf("errorCode %v / header %q, want %d", m["errorCode"], a.header.Get("x-ms-error-code"), code)
	}
	for _, f := range []string{"trackingId", "message", "info", "timestampUtc"} {
		if _, ok := m[f]; !ok {
			t.Fatalf("error body lacks %s: %s", f, a.body)
		}
	}
}

func TestRegisterSymmetricKey(t *testing.T) {
	s := newServer(t, options{})
	now := time.Now()
	hour := now.Add(time.Hour)
	tests := []struct {
		name       string
		regID      string
		auth       func(t testing.TB) string
		wantHTTP   int
		wantStatus string // registration status when 200
		wantCode   int    // errorCode otherwise
		wantDevice string
		wantGroup  string
	}{
		{"individual primary key", "dev-1", func(t testing.TB) string { return token(t, key(t, primaryKey), "dev-1", hour) }, 200, "assigned", 0, "thing-1", ""},
		{"individual secondary key", "dev-1", func(t testing.TB) string { return token(t, key(t, secondaryKey), "dev-1", hour) }, 200, "assigned", 0, "thing-1", ""},
		{"group-derived key", "grp-dev-7", func(t testing.TB) string { return token(t, derived(t, groupKey, "grp-dev-7"), "grp-dev-7", hour) }, 200, "assigned", 0, "grp-dev-7", "g-on"},
		{"wrong key", "dev-1", func(t testing.TB) string { return token(t, key(t, otherKey), "dev-1", hour) }, 401, "", 401002, "", ""},
		{"expired SAS", "dev-1", func(t testing.TB) string { return token(t, key(t, primaryKey), "dev-1", now.Add(-time.Hour)) }, 401, "", 401002, "", ""},
		{"group key used directly", "grp-dev-8", func(t testing.TB) string { return token(t, key(t, groupKey), "grp-dev-8", hour) }, 401, "", 401002, "", ""},
		{"SAS of another registration ID", "dev-1", func(t testing.TB) string { return token(t, key(t, primaryKey), "dev-2", hour) }, 401, "", 401002, "", ""},
		{"no Authorization", "dev-1", func(testing.TB) string { return "" }, 401, "", 401002, "", ""},
		{"garbage Authorization", "dev-1", func(testing.TB) string { return "SharedAccessSignature nonsense" }, 401, "", 401002, "", ""},
		{"disabled enrollment", "off-1", func(t testing.TB) string { return token(t, key(t, primaryKey), "off-1", hour) }, 200, "disabled", 0, "", ""},
		{"disabled group", "grp-dev-9", func(t testing.TB) string { return token(t, derived(t, otherKey, "grp-dev-9"), "grp-dev-9", hour) }, 200, "disabled", 0, "", ""},
		{"disabled individual under enabled group, its own key", "grp-off-ind", func(t testing.TB) string { return token(t, key(t, primaryKey), "grp-off-ind", hour) }, 200, "disabled", 0, "", ""},
		{"disabled individual under enabled group, the group-derived key", "grp-off-ind", func(t testing.TB) string {
			return token(t, derived(t, groupKey, "grp-off-ind"), "grp-off-ind", hour)
		}, 401, "", 401002, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.count(t, store.BucketRegistrations)
			a := s.register(t, tc.regID, tc.auth(t), map[string]any{"registrationId": tc.regID})
			if tc.wantHTTP != 200 {
				checkError(t, a, tc.wantHTTP, tc.wantCode)
				if s.count(t, store.BucketRegistrations) != before {
					t.Fatal("a refused registration stored a record")
				}
				return
			}
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			var got deviceapi.RegistrationOperationStatus
			if err := json.Unmarshal(a.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.wantStatus || got.OperationID == "" || got.RegistrationState == nil || got.RegistrationState.Status != tc.wantStatus {
				t.Fatalf("answer %s", a.body)
			}
			if tc.wantStatus != "assigned" {
				if _, err := s.st.Registrations.Get(context.Background(), tc.regID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("record stored for %s: %v", tc.wantStatus, err)
				}
				return
			}
			rs := got.RegistrationState
			if rs.DeviceID != tc.wantDevice || !strings.HasPrefix(rs.AssignedHub, "hub-") || rs.Substatus != "initialAssignment" ||
				rs.SymmetricKey == nil || rs.SymmetricKey.EnrollmentGroupID != tc.wantGroup || rs.ETag == "" || rs.CreatedDateTimeUTC == nil {
				t.Fatalf("registrationState %s", a.body)
			}
		})
	}
}

func csr(t testing.TB, cn string, curve elliptic.Curve) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func TestRegisterWithCSR(t *testing.T) {
	s := newServer(t, options{})
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	tests := []struct {
		name     string
		csr      string
		wantHTTP int
	}{
		{"good CSR", csr(t, "dev-1", elliptic.P256()), 200},
		{"wrong CN", csr(t, "dev-2", elliptic.P256()), 400},
		{"weak key", csr(t, "dev-1", elliptic.P224()), 400},
		{"not base64", "%%%not-base64", 400},
		{"base64 of garbage", base64.StdEncoding.EncodeToString([]byte("garbage")), 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certs := s.count(t, revocation.BucketCertificates)
			a := s.register(t, "dev-1", auth, map[string]any{"registrationId": "dev-1", "csr": tc.csr, "payload": map[string]any{"model": "m1"}})
			if tc.wantHTTP != 200 {
				checkError(t, a, tc.wantHTTP, dps.CodeBadArgument)
				if s.count(t, revocation.BucketCertificates) != certs {
					t.Fatal("a refused CSR stored a certificate")
				}
				return
			}
			var got deviceapi.RegistrationOperationStatus
			if err := json.Unmarshal(a.body, &got); err != nil {
				t.Fatal(err)
			}
			chain := got.RegistrationState.IssuedCertificateChain
			if len(chain) != 3 {
				t.Fatalf("issuedCertificateChain of %d: %s", len(chain), a.body)
			}
			var parsed []*x509.Certificate
			for _, c := range chain {
				der, err := base64.StdEncoding.DecodeString(c)
				if err != nil {
					t.Fatal(err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				parsed = append(parsed, cert)
			}
			inter := x509.NewCertPool()
			inter.AddCert(parsed[1])
			if _, err := parsed[0].Verify(x509.VerifyOptions{Roots: s.ca.Roots(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatal(err)
			}
			if parsed[0].Subject.CommonName != "thing-1" || !parsed[2].Equal(s.ca.Root()) {
				t.Fatalf("leaf CN %q", parsed[0].Subject.CommonName)
			}
			// Only a custom allocation webhook's payload is answered (as on
			// Azure); the device's own is never echoed.
			if len(got.RegistrationState.Payload) != 0 || bytes.Contains(a.body, []byte(`"payload"`)) {
				t.Fatalf("the device's own payload was echoed: %s", a.body)
			}
			if _, err := revocation.Certificates(s.st.Backend, nil).Get(context.Background(), fmt.Sprintf("%032x", parsed[0].SerialNumber)); err != nil {
				t.Fatalf("issued certificate not stored: %v", err)
			}
			// The status lookup answers the record, never a certificate.
			st := s.do(t, http.MethodPost, "/"+idScope+"/registrations/dev-1?api-version=2021-10-01", auth, []byte(`{"registrationId":"dev-1"}`), nil)
			if st.status != 200 || bytes.Contains(st.body, []byte("issuedCertificateChain")) || st.json(t)["assignedHub"] != got.RegistrationState.AssignedHub {
				t.Fatalf("status lookup %d %s", st.status, st.body)
			}
		})
	}
}

func TestReregistrationKeepsDeviceAndHub(t *testing.T) {
	s := newServer(t, options{viaAPI: true})
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	var first deviceapi.RegistrationOperationStatus
	for i := range 3 {
		a := s.register(t, "dev-1", auth, map[string]any{"registrationId": "dev-1"})
		var got deviceapi.RegistrationOperationStatus
		if err := json.Unmarshal(a.body, &got); err != nil || a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if i == 0 {
			first = got
			continue
		}
		r, f := got.RegistrationState, first.RegistrationState
		if r.DeviceID != f.DeviceID || r.AssignedHub != f.AssignedHub || r.Substatus != "initialAssignment" || got.OperationID == first.OperationID || r.ETag == f.ETag {
			t.Fatalf("re-registration %d: %s", i, a.body)
		}
	}
}

func TestOperationOfAnotherDevice(t *testing.T) {
	s := newServer(t, options{azure202: true})
	hour := time.Now().Add(time.Hour)
	a1 := s.register(t, "dev-1", token(t, key(t, primaryKey), "dev-1", hour), map[string]any{"registrationId": "dev-1"})
	if a1.status != 202 {
		t.Fatalf("%d %s", a1.status, a1.body)
	}
	op := a1.json(t)["operationId"].(string)
	auth2 := token(t, key(t, otherKey), "dev-2", hour)
	tests := []struct {
		name, path, auth string
		status, code     int
	}{
		{"other device polls under its own ID", "/" + idScope + "/registrations/dev-2/operations/" + op, auth2, 404, 404201},
		{"other device polls under the owner's ID", "/" + idScope + "/registrations/dev-1/operations/" + op, auth2, 401, 401002},
		{"unknown operation", "/" + idScope + "/registrations/dev-2/operations/0123456789abcdef0123456789abcdef", auth2, 404, 404201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, s.do(t, http.MethodGet, tc.path+"?api-version=2019-03-31", tc.auth, []byte(`{}`), nil), tc.status, tc.code)
		})
	}
}

func TestAzureCompatible202(t *testing.T) {
	s := newServer(t, options{azure202: true, viaAPI: true})
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	a := s.register(t, "dev-1", auth, map[string]any{"registrationId": "dev-1", "csr": csr(t, "dev-1", elliptic.P256())})
	if a.status != 202 || a.header.Get("Retry-After") != "1" || a.header.Get("Location") == "" {
		t.Fatalf("%d Retry-After %q Location %q: %s", a.status, a.header.Get("Retry-After"), a.header.Get("Location"), a.body)
	}
	m := a.json(t)
	if m["status"] != "assigning" || m["operationId"] == "" {
		t.Fatalf("%s", a.body)
	}
	// The Node SDK polls with a {} body.
	p := s.do(t, http.MethodGet, a.header.Get("Location"), auth, []byte(`{}`), nil)
	var got deviceapi.RegistrationOperationStatus
	if err := json.Unmarshal(p.body, &got); err != nil || p.status != 200 {
		t.Fatalf("%d %s", p.status, p.body)
	}
	if got.Status != "assigned" || got.OperationID != m["operationId"] || len(got.RegistrationState.IssuedCertificateChain) != 3 || got.RegistrationState.DeviceID != "thing-1" {
		t.Fatalf("%s", p.body)
	}
}

// lowerHex rewrites percent-escapes in lower case, as the C SDK sends them.
func lowerHex(s string) string {
	return regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(s, strings.ToLower)
}

func TestCSDKShapedRequests(t *testing.T) {
	for _, via := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaAPI=%v", via), func(t *testing.T) {
			s := newServer(t, options{azure202: true, viaAPI: via})
			regID := "sym:dev.1_x"
			encID := lowerHex(url.QueryEscape(regID)) // sym%3adev.1_x
			resource := lowerHex(url.QueryEscape(idScope + "/registrations/" + regID))
			auth := sas.Build(key(t, secondaryKey), resource, "registration", time.Now().Add(2400*time.Second))
			hdr := map[string]string{"UserAgent": "prov_device_client/1.0", "User-Agent": ""}
			body, _ := json.Marshal(map[string]any{"registrationId": regID})
			a := s.do(t, http.MethodPut, "/"+idScope+"/registrations/"+encID+"/register?api-version=2021-06-01", auth, body, hdr)
			if a.status != 202 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			op := a.json(t)["operationId"].(string)
			p := s.do(t, http.MethodGet, "/"+idScope+"/registrations/"+encID+"/operations/"+op+"?api-version=2021-06-01", auth, nil, hdr)
			m := p.json(t)
			if p.status != 200 || m["status"] != "assigned" || m["registrationState"].(map[string]any)["deviceId"] != regID {
				t.Fatalf("%d %s", p.status, p.body)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	s := newServer(t, options{maxBody: 20 << 10, maxPayload: 1 << 10})
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	reg := "/" + idScope + "/registrations/dev-1/register"
	tests := []struct {
		name, method, path, body string
		status, code             int
	}{
		{"unknown api-version", "PUT", reg + "?api-version=2018-01-01", `{"registrationId":"dev-1"}`, 400, 400004},
		{"no api-version", "PUT", reg, `{"registrationId":"dev-1"}`, 400, 400004},
		{"wrong ID scope", "PUT", "/0ne0000FFFF/registrations/dev-1/register?api-version=2019-03-31", `{"registrationId":"dev-1"}`, 404, 404201},
		{"body names another registration", "PUT", reg + "?api-version=2019-03-31", `{"registrationId":"dev-2"}`, 400, 400004},
		{"body without registrationId", "PUT", reg + "?api-version=2019-03-31", `{}`, 400, 400004},
		{"empty body", "PUT", reg + "?api-version=2019-03-31", ``, 400, 400004},
		{"unknown field", "PUT", reg + "?api-version=2019-03-31", `{"registrationId":"dev-1","etag":"x"}`, 400, 400004},
		{"unknown tpm field", "PUT", reg + "?api-version=2019-03-31", `{"registrationId":"dev-1","tpm":{"x":1}}`, 400, 400004},
		{"enrollment-only tpm field", "PUT", reg + "?api-version=2019-03-31", `{"registrationId":"dev-1","tpm":{"endorsementKey":"AAE=","requireEndorsementKeyCertificate":false}}`, 400, 400004},
		{"trailing data", "PUT", reg + "?api-version=2019-03-31", `{"registrationId":"dev-1"} {}`, 400, 400004},
		{"not an object", "PUT", reg + "?api-version=2019-03-31", `["dev-1"]`, 400, 400004},
		{"body too large", "PUT", reg + "?api-version=2019-03-31", `{"registrationId":"dev-1","payload":"` + strings.Repeat("a", 30000) + `"}`, 413, 413004},
		{"invalid registration ID", "PUT", "/" + idScope + "/registrations/bad%20id/register?api-version=2019-03-31", `{"registrationId":"bad id"}`, 400, 400004},
		{"registration ID case differs from body (accepted)", "PUT", "/" + idScope + "/registrations/DEV-1/register?api-version=2019-03-31", `{"registrationId":"dev-1"}`, 200, 0},
		{"id scope in other case (accepted)", "PUT", "/" + strings.ToLower(idScope) + "/registrations/dev-1/register?api-version=2019-03-31", `{"registrationId":"dev-1"}`, 200, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := s.count(t, provisioning.BucketOperations)
			a := s.do(t, tc.method, tc.path, auth, []byte(tc.body), nil)
			if tc.status == 200 {
				if a.status != 200 {
					t.Fatalf("%d %s", a.status, a.body)
				}
				return
			}
			checkError(t, a, tc.status, tc.code)
			if s.count(t, provisioning.BucketOperations) != ops {
				t.Fatal("a refused request stored an operation")
			}
		})
	}
}

// TestNonASCIIRegistrationID: the refusal names the character the device
// sent, decoded from the path, not a byte of its UTF-8 form.
func TestNonASCIIRegistrationID(t *testing.T) {
	s := newServer(t, options{})
	a := s.do(t, http.MethodPut, "/"+idScope+"/registrations/"+url.PathEscape("dév-☃")+"/register?api-version=2021-06-01", "", []byte(`{"registrationId":"dév-☃"}`), nil)
	checkError(t, a, 400, dps.CodeBadArgument)
	if msg := a.json(t)["message"].(string); !strings.Contains(msg, `character 'é' at position 2`) {
		t.Fatalf("message %q", msg)
	}
}

func TestStatusLookup(t *testing.T) {
	s := newServer(t, options{})
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	path := "/" + idScope + "/registrations/dev-1?api-version=2021-10-01"
	checkError(t, s.do(t, http.MethodPost, path, auth, []byte(`{"registrationId":"dev-1"}`), nil), 404, 404201)
	if a := s.register(t, "dev-1", auth, map[string]any{"registrationId": "dev-1"}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	tests := []struct {
		name, auth, body string
		status           int
	}{
		{"with body", auth, `{"registrationId":"dev-1"}`, 200},
		{"without body", auth, ``, 200},
		{"wrong key", token(t, key(t, otherKey), "dev-1", time.Now().Add(time.Hour)), `{"registrationId":"dev-1"}`, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := s.do(t, http.MethodPost, path, tc.auth, []byte(tc.body), nil)
			if a.status != tc.status {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if tc.status == 200 && a.json(t)["status"] != "assigned" {
				t.Fatalf("%s", a.body)
			}
		})
	}
}

// TestNoSecretsInLogs runs full registrations (individual key with CSR,
// group-derived key, refusals, polls) and checks that no key, token,
// signature, CSR or payload secret reaches the log.
func TestNoSecretsInLogs(t *testing.T) {
	s := newServer(t, options{azure202: true, viaAPI: true})
	hour := time.Now().Add(time.Hour)
	devKey := derived(t, groupKey, "grp-dev-1")
	auths := []string{
		token(t, key(t, primaryKey), "dev-1", hour),
		token(t, devKey, "grp-dev-1", hour),
		token(t, key(t, otherKey), "dev-1", hour),                     // refused
		token(t, key(t, primaryKey), "dev-1", hour.Add(-3*time.Hour)), // expired
	}
	c := csr(t, "dev-1", elliptic.P256())
	secret := "payload-secret-7c1f"
	a := s.register(t, "dev-1", auths[0], map[string]any{"registrationId": "dev-1", "csr": c, "payload": map[string]any{"password": secret}})
	s.do(t, http.MethodGet, a.header.Get("Location"), auths[0], nil, nil)
	s.register(t, "grp-dev-1", auths[1], map[string]any{"registrationId": "grp-dev-1", "payload": secret})
	s.register(t, "dev-1", auths[2], map[string]any{"registrationId": "dev-1"})
	s.register(t, "dev-1", auths[3], map[string]any{"registrationId": "dev-1"})
	s.register(t, "dev-1", auths[0], map[string]any{"registrationId": "dev-1", "csr": csr(t, "wrong", elliptic.P256())})
	s.do(t, http.MethodPost, "/"+idScope+"/registrations/dev-1?api-version=2021-10-01", auths[0], nil, nil)

	logs := s.logs.String()
	if !strings.Contains(logs, `"registration_id":"dev-1"`) || !strings.Contains(logs, `"outcome":"assigned"`) || !strings.Contains(logs, `"outcome":"unauthorized"`) {
		t.Fatalf("the logs do not record the registrations:\n%s", logs)
	}
	// Refusals say why, in fixed words.
	for _, reason := range []string{"SAS signature or resource does not match an enrollment", "SAS token expired", "CSR CN does not match registrationId"} {
		if !strings.Contains(logs, `"reason":"`+reason+`"`) {
			t.Errorf("the logs lack the refusal reason %q:\n%s", reason, logs)
		}
	}
	forbidden := map[string]string{
		"primary key": primaryKey, "secondary key": secondaryKey, "group key": groupKey, "other key": otherKey,
		"derived key": base64.StdEncoding.EncodeToString(devKey), "csr": c[:40], "payload secret": secret,
	}
	for i, auth := range auths {
		forbidden[fmt.Sprintf("token %d", i)] = auth
		tok, err := sas.Parse(auth)
		if err != nil {
			t.Fatal(err)
		}
		sig := base64.StdEncoding.EncodeToString(tok.Signature)
		forbidden[fmt.Sprintf("signature %d", i)] = sig
		forbidden[fmt.Sprintf("escaped signature %d", i)] = url.QueryEscape(sig)
	}
	for what, v := range forbidden {
		if strings.Contains(logs, v) {
			t.Errorf("the %s appears in the logs", what)
		}
	}
}

// TestConcurrentRegistrationsOverHTTPS: many devices of one registration
// ID at once, each with its own CSR, through TLS and the real stack.
func TestConcurrentRegistrationsOverHTTPS(t *testing.T) {
	s := newServer(t, options{})
	n := 200
	if testing.Short() {
		n = 20
	}
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	s.srv.Client().Transport.(*http.Transport).MaxConnsPerHost = 32
	s.srv.Client().Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	csrs := make([]string, n)
	for i := range csrs {
		csrs[i] = csr(t, "dev-1", elliptic.P256())
	}
	var wg sync.WaitGroup
	serials := make([]string, n)
	for i := range n {
		wg.Go(func() {
			a := s.register(t, "dev-1", auth, map[string]any{"registrationId": "dev-1", "csr": csrs[i]})
			var got deviceapi.RegistrationOperationStatus
			if err := json.Unmarshal(a.body, &got); err != nil || a.status != 200 {
				t.Errorf("%d %s", a.status, a.body)
				return
			}
			der, _ := base64.StdEncoding.DecodeString(got.RegistrationState.IssuedCertificateChain[0])
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Error(err)
				return
			}
			serials[i] = fmt.Sprintf("%032x", cert.SerialNumber)
		})
	}
	wg.Wait()
	rec, err := s.st.Registrations.Get(context.Background(), "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, sn := range serials {
		if seen[sn] {
			t.Fatalf("serial %s twice", sn)
		}
		seen[sn] = true
	}
	// The record lists the newest renewable certificates; all are stored.
	if len(rec.CertificateSerials) != min(n, provisioning.MaxRenewableCertificates) || s.count(t, revocation.BucketCertificates) != n {
		t.Fatalf("%d serials in the record, %d certificates stored, want %d and %d", len(rec.CertificateSerials), s.count(t, revocation.BucketCertificates), min(n, provisioning.MaxRenewableCertificates), n)
	}
}

func TestNewValidates(t *testing.T) {
	svc := &provisioning.Service{}
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name string
		cfg  deviceapi.Config
		ok   bool
	}{
		{"good", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log}, true},
		{"no provisioner", deviceapi.Config{IDScope: idScope, Logger: log}, false},
		{"no scope", deviceapi.Config{Provisioner: svc, Logger: log}, false},
		{"scope with slash", deviceapi.Config{Provisioner: svc, IDScope: "a/b", Logger: log}, false},
		{"no logger", deviceapi.Config{Provisioner: svc, IDScope: idScope}, false},
		{"retry-after above 300s", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, RetryAfter: 301 * time.Second}, false},
		{"retry-after not whole seconds", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, RetryAfter: 1500 * time.Millisecond}, false},
		{"retry-after not below idle timeout", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, RetryAfter: 5 * time.Second, IdleTimeout: 5 * time.Second}, false},
		{"retry-after below idle timeout", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, RetryAfter: 5 * time.Second, IdleTimeout: 60 * time.Second}, true},
		{"payload limit above the default body limit raises it", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, MaxPayloadBytes: 1 << 20}, true},
		{"body limit leaves room for a CSR", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, MaxBodyBytes: 20 << 10, MaxPayloadBytes: 4 << 10}, true},
		{"body limit too small for the default payload", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, MaxBodyBytes: 90 << 10}, false},
		{"body limit without room for a CSR", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, MaxBodyBytes: 20 << 10, MaxPayloadBytes: 10 << 10}, false},
		{"negative payload limit", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, MaxPayloadBytes: -1}, false},
		{"negative body timeout", deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: log, BodyTimeout: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := deviceapi.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
