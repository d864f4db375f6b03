package device

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
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/sas"
)

func TestTransientFailuresAreRetried(t *testing.T) {
	ok := step{status: 200, body: assigned("")}
	cases := []struct {
		name       string
		steps      []step
		wantSleeps []time.Duration
	}{
		{"429 then success honours Retry-After", []step{{status: 429, header: map[string]string{"Retry-After": "7"}, body: errBody(429001, "throttled")}, ok}, []time.Duration{7 * time.Second}},
		{"503 three times then success backs off exponentially", []step{{status: 503}, {status: 503}, {status: 503}, ok}, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}},
		{"503 with Retry-After", []step{{status: 503, header: map[string]string{"Retry-After": "3"}}, ok}, []time.Duration{3 * time.Second}},
		{"429 with Retry-After 0 backs off", []step{{status: 429, header: map[string]string{"Retry-After": "0"}}, ok}, []time.Duration{500 * time.Millisecond}},
		{"429 with Retry-After over 300 backs off", []step{{status: 429, header: map[string]string{"Retry-After": "301"}}, ok}, []time.Duration{500 * time.Millisecond}},
		{"connection dropped then success", []step{{drop: true}, ok}, []time.Duration{500 * time.Millisecond}},
		{"HTML 502 from a proxy then success", []step{{status: 502, header: map[string]string{"Content-Type": "text/html"}, body: "<html>bad gateway</html>"}, ok}, []time.Duration{500 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, tc.steps...)
			clk := newClock()
			res, err := Register(context.Background(), config(f, clk))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != "assigned" || res.AssignedHub != "hub-a.example.net" || res.DeviceID != "dev-1" {
				t.Fatalf("result %+v", res)
			}
			if got := clk.Sleeps(); !slices.Equal(got, tc.wantSleeps) {
				t.Errorf("waited %v, want %v", got, tc.wantSleeps)
			}
			if n := len(f.requests()); n != len(tc.steps) {
				t.Errorf("%d requests, want %d", n, len(tc.steps))
			}
		})
	}
}

func TestBackoffJitterAndCap(t *testing.T) {
	c := &Client{cfg: Config{Jitter: func() float64 { return 0.5 }}}
	for n, want := range map[int]time.Duration{0: 750 * time.Millisecond, 1: 1500 * time.Millisecond, 5: 24 * time.Second, 6: 45 * time.Second, 40: 45 * time.Second} {
		if got := c.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestGivesUp(t *testing.T) {
	cases := []struct {
		name         string
		mutate       func(*Config)
		step         step
		wantRequests int
	}{
		{"500 forever stops after MaxRetries", func(c *Config) { c.MaxRetries = 3 }, step{status: 500, body: errBody(500000, "boom")}, 4},
		{"500 forever with default retries", nil, step{status: 500}, DefaultMaxRetries + 1},
		{"429 forever stops at MaxWait", func(c *Config) { c.MaxWait = 2 * time.Minute; c.MaxRetries = 100 }, step{status: 429, header: map[string]string{"Retry-After": "60"}}, 3},
		{"no retries", func(c *Config) { c.MaxRetries = -1 }, step{status: 503}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, tc.step)
			clk := newClock()
			cfg := config(f, clk)
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			_, err := Register(context.Background(), cfg)
			if !errors.Is(err, ErrGaveUp) {
				t.Fatalf("want ErrGaveUp, got %v", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != tc.step.status {
				t.Fatalf("the last failure is not in the error: %v", err)
			}
			if n := len(f.requests()); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestPollingRetryAfter(t *testing.T) {
	cases := []struct {
		retryAfter string
		want       time.Duration
	}{
		{"", time.Second},
		{"0", time.Second},
		{"301", time.Second},
		{"-4", time.Second},
		{"soon", time.Second},
		{"Wed, 21 Oct 2015 07:28:00 GMT", time.Second},
		{"1", time.Second},
		{"5", 5 * time.Second},
		{"300", 300 * time.Second},
	}
	for _, tc := range cases {
		t.Run("Retry-After "+tc.retryAfter, func(t *testing.T) {
			h := map[string]string{}
			if tc.retryAfter != "" {
				h["Retry-After"] = tc.retryAfter
			}
			f := newFake(t, nil,
				step{status: 202, header: h, body: assigningBody},
				step{status: 202, header: h, body: assigningBody},
				step{status: 200, body: assigned("")})
			clk := newClock()
			cfg := config(f, clk)
			cfg.MaxWait = time.Hour
			res, err := Register(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.OperationID != "op-1" {
				t.Errorf("operation %q", res.OperationID)
			}
			if got := clk.Sleeps(); !slices.Equal(got, []time.Duration{tc.want, tc.want}) {
				t.Errorf("waited %v, want %s twice", got, tc.want)
			}
			reqs := f.requests()
			if len(reqs) != 3 {
				t.Fatalf("%d requests", len(reqs))
			}
			for _, r := range reqs[1:] {
				if r.method != http.MethodGet || r.rawPath != "/"+testScope+"/registrations/dev-1/operations/op-1" || r.auth == "" || r.body != "" {
					t.Errorf("poll %s %s auth=%t body %q", r.method, r.rawPath, r.auth != "", r.body)
				}
			}
		})
	}
}

func TestAssigningIn200Polls(t *testing.T) {
	f := newFake(t, nil, step{status: 200, body: assigningBody}, step{status: 200, body: assigned("")})
	clk := newClock()
	if _, err := Register(context.Background(), config(f, clk)); err != nil {
		t.Fatal(err)
	}
	if reqs := f.requests(); len(reqs) != 2 || reqs[1].method != http.MethodGet {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestPollingStopsAtMaxWait(t *testing.T) {
	f := newFake(t, nil, step{status: 202, header: map[string]string{"Retry-After": "10"}, body: assigningBody})
	clk := newClock()
	cfg := config(f, clk)
	cfg.MaxWait = 35 * time.Second
	_, err := Register(context.Background(), cfg)
	if !errors.Is(err, ErrGaveUp) {
		t.Fatalf("want ErrGaveUp, got %v", err)
	}
	if n := len(f.requests()); n != 4 {
		t.Errorf("%d requests, want 4 (0, 10, 20, 30 s)", n)
	}
}

func TestFinalStatuses(t *testing.T) {
	failed := `{"operationId":"op-9","status":"failed","registrationState":{"registrationId":"dev-1","status":"failed","errorCode":400209,"errorMessage":"Custom allocation failed with status code: 500"}}`
	disabled := `{"operationId":"op-9","status":"disabled","registrationState":{"registrationId":"dev-1","status":"disabled"}}`
	cases := []struct {
		name     string
		steps    []step
		want     error
		wantCode int
	}{
		{"failed at once", []step{{status: 200, body: failed}}, ErrFailed, 400209},
		{"failed after polling", []step{{status: 202, body: assigningBody}, {status: 200, body: failed}}, ErrFailed, 400209},
		{"disabled at once", []step{{status: 200, body: disabled}}, ErrDisabled, 0},
		{"disabled after polling", []step{{status: 202, body: assigningBody}, {status: 200, body: disabled}}, ErrDisabled, 0},
		{"Failed in another case", []step{{status: 200, body: strings.Replace(failed, `"failed"`, `"Failed"`, 1)}}, ErrFailed, 400209},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, tc.steps...)
			_, err := Register(context.Background(), config(f, newClock()))
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			var e *Error
			if !errors.As(err, &e) || e.ErrorCode != tc.wantCode || e.OperationID != "op-9" {
				t.Fatalf("error %#v", e)
			}
			if tc.want == ErrFailed && !strings.Contains(e.Message, "Custom allocation") {
				t.Errorf("message %q", e.Message)
			}
			for _, other := range []error{ErrUnauthorized, ErrNotFound, ErrGaveUp} {
				if errors.Is(err, other) {
					t.Errorf("also matches %v", other)
				}
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name       string
		step       step
		want       error
		wantCode   int
		wantStatus int
	}{
		{"401", step{status: 401, header: map[string]string{"x-ms-error-code": "401002"}, body: errBody(401002, "Unauthorized")}, ErrUnauthorized, 401002, 401},
		{"404", step{status: 404, body: errBody(404201, "No provisioning service with this ID scope.")}, ErrNotFound, 404201, 404},
		{"400", step{status: 400, body: errBody(400004, "bad csr")}, ErrBadRequest, 400004, 400},
		{"401 without a DPS body takes the header", step{status: 401, header: map[string]string{"x-ms-error-code": "401002", "Content-Type": "text/plain"}, body: "nope"}, ErrUnauthorized, 401002, 401},
		{"errorCode as a string", step{status: 401, body: `{"errorCode":"401002","message":"x"}`}, ErrUnauthorized, 401002, 401},
		{"403 is final", step{status: 403, body: errBody(403000, "forbidden")}, nil, 403000, 403},
		{"302 is not followed", step{status: 302, header: map[string]string{"Location": "https://elsewhere.example/"}}, nil, 0, 302},
		{"428 is final", step{status: 428}, nil, 0, 428},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, tc.step, step{status: 200, body: assigned("")})
			clk := newClock()
			_, err := Register(context.Background(), config(f, clk))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error, got %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("want %v, got %v", tc.want, err)
			}
			if e.StatusCode != tc.wantStatus || e.ErrorCode != tc.wantCode {
				t.Errorf("error %#v", e)
			}
			if errors.Is(err, ErrGaveUp) || len(f.requests()) != 1 || len(clk.Sleeps()) != 0 {
				t.Errorf("a final refusal was retried: %d requests", len(f.requests()))
			}
		})
	}
	t.Run("tracking ID in the message", func(t *testing.T) {
		f := newFake(t, nil, step{status: 401, body: errBody(401002, "Unauthorized")})
		_, err := Register(context.Background(), config(f, newClock()))
		var e *Error
		if !errors.As(err, &e) || e.TrackingID != "trk-1" || e.Message != "Unauthorized" {
			t.Fatalf("error %#v", e)
		}
	})
}

func TestMalformedAnswers(t *testing.T) {
	otherKey, _ := GenerateKey()
	cases := []struct {
		name string
		step step
	}{
		{"not JSON", step{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "<html>hello</html>"}},
		{"empty 200", step{status: 200}},
		{"JSON array", step{status: 200, body: `[]`}},
		{"truncated JSON", step{status: 200, body: `{"operationId":"op-1","status":"ass`}},
		{"assigning without operationId", step{status: 202, body: `{"status":"assigning"}`}},
		{"unknown status", step{status: 200, body: `{"operationId":"op-1","status":"pending"}`}},
		{"assigned without registrationState", step{status: 200, body: `{"operationId":"op-1","status":"assigned"}`}},
		{"assigned without hub", step{status: 200, body: `{"operationId":"op-1","status":"assigned","registrationState":{"deviceId":"d"}}`}},
		{"chain not base64", step{status: 200, body: assigned(`,"issuedCertificateChain":["***"]`)}},
		{"chain not a certificate", step{status: 200, body: assigned(`,"issuedCertificateChain":["AAAA"]`)}},
		{"leaf for another key", step{status: 200, body: assigned(`,"issuedCertificateChain":["` + base64.StdEncoding.EncodeToString(selfSigned(t, "dev-1", otherKey)) + `"]`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, tc.step)
			cfg := config(f, newClock())
			cfg.GenerateKey = true
			_, err := Register(context.Background(), cfg)
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("want ErrMalformedResponse, got %v", err)
			}
			if len(f.requests()) != 1 {
				t.Errorf("a malformed answer was retried")
			}
		})
	}
}

func TestSymmetricKeyRequest(t *testing.T) {
	groupKey := []byte("group-key-bytes-group-key-bytes!")
	cases := []struct {
		name        string
		regID       string
		mutate      func(*Config)
		wantKey     []byte
		wantVersion string
		wantCSR     bool
		wantPayload string
	}{
		{"individual key", "dev-1", nil, testKey, DefaultAPIVersion, false, ""},
		{"group key derives the device key", "sym:dev.1_x", func(c *Config) { c.SymmetricKey = nil; c.GroupKey = groupKey }, sas.DeriveDeviceKey(groupKey, "sym:dev.1_x"), DefaultAPIVersion, false, ""},
		{"CSR switches the api-version", "dev-1", func(c *Config) { c.GenerateKey = true }, testKey, CSRAPIVersion, true, ""},
		{"explicit api-version and payload", "dev-1", func(c *Config) { c.APIVersion = "2019-03-31"; c.Payload = json.RawMessage(`{"model":"x1"}`) }, testKey, "2019-03-31", false, `{"model":"x1"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, step{status: 200, body: strings.Replace(assigned(""), `"dev-1"`, `"`+tc.regID+`"`, 1)})
			clk := newClock()
			cfg := config(f, clk)
			cfg.RegistrationID = tc.regID
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			if _, err := Register(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			r := f.requests()[0]
			if r.method != http.MethodPut {
				t.Errorf("method %s", r.method)
			}
			if want := "/" + testScope + "/registrations/" + escapeSegment(tc.regID) + "/register"; r.rawPath != want {
				t.Errorf("path %s, want %s", r.rawPath, want)
			}
			if strings.Contains(tc.regID, ":") && !strings.Contains(r.rawPath, "%3A") {
				t.Errorf("':' not percent-encoded: %s", r.rawPath)
			}
			q, _ := url.ParseQuery(r.query)
			if q.Get("api-version") != tc.wantVersion {
				t.Errorf("api-version %q, want %q", q.Get("api-version"), tc.wantVersion)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			tok, err := sas.Parse(r.auth)
			if err != nil {
				t.Fatal(err)
			}
			wantSR := url.QueryEscape(testScope + "/registrations/" + tc.regID)
			if tok.Resource != wantSR || tok.KeyName != "registration" {
				t.Errorf("token sr=%q skn=%q, want sr=%q", tok.Resource, tok.KeyName, wantSR)
			}
			if err := tok.Verify(tc.wantKey, clk.Now(), 0); err != nil {
				t.Errorf("token does not verify with the device key: %v", err)
			}
			if got := tok.Expiry; !got.Equal(clk.Now().Add(DefaultTokenTTL)) {
				t.Errorf("expiry %s", got)
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal([]byte(r.body), &body); err != nil {
				t.Fatal(err)
			}
			var id string
			_ = json.Unmarshal(body["registrationId"], &id)
			if id != tc.regID {
				t.Errorf("body registrationId %q", id)
			}
			if _, has := body["csr"]; has != tc.wantCSR {
				t.Errorf("csr sent %t, want %t", has, tc.wantCSR)
			}
			if string(body["payload"]) != tc.wantPayload {
				t.Errorf("payload %s, want %s", body["payload"], tc.wantPayload)
			}
		})
	}
}

// testCA is a root that signs device and issued certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: k}
}

func (ca *testCA) sign(t testing.TB, cn string, pub any, isCA bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage, tmpl.ExtKeyUsage = true, true, x509.KeyUsageCertSign, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func selfSigned(t testing.TB, cn string, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestGeneratedKeyAndIssuedChain(t *testing.T) {
	ca := newCA(t, "Issuing CA")
	f := newFake(t, nil)
	f.handle = func(s seen) step {
		var body struct{ RegistrationID, CSR string }
		_ = json.Unmarshal([]byte(s.body), &body)
		der, _ := base64.StdEncoding.DecodeString(body.CSR)
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != body.RegistrationID || len(csr.Extensions) != 0 || len(csr.DNSNames) != 0 {
			return step{status: 400, body: errBody(400004, "bad csr")}
		}
		if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
			return step{status: 400, body: errBody(400004, "not ECDSA")}
		}
		leaf := ca.sign(t, "dev-1", csr.PublicKey, false)
		chain := `["` + base64.StdEncoding.EncodeToString(leaf.Raw) + `","` + base64.StdEncoding.EncodeToString(ca.cert.Raw) + `"]`
		return step{status: 200, body: assigned(`,"issuedCertificateChain":` + chain + `,"payload":{"hello":"world"}`)}
	}
	cfg := config(f, newClock())
	cfg.GenerateKey = true
	res, err := Register(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IssuedCertificateChain) != 2 || res.IssuedCertificateChain[0].Subject.CommonName != "dev-1" || !res.IssuedCertificateChain[1].Equal(ca.cert) {
		t.Fatalf("chain %v", res.IssuedCertificateChain)
	}
	if res.PrivateKey == nil {
		t.Fatal("no private key")
	}
	if string(res.Payload) != `{"hello":"world"}` {
		t.Errorf("payload %s", res.Payload)
	}
	tc, err := res.TLSCertificate()
	if err != nil || len(tc.Certificate) != 2 || tc.Leaf == nil {
		t.Fatalf("TLSCertificate: %v", err)
	}
	var rs struct {
		RegistrationState struct{ DeviceID string } `json:"registrationState"`
	}
	if err := json.Unmarshal(res.Raw, &rs); err != nil || rs.RegistrationState.DeviceID != "dev-1" {
		t.Errorf("Raw %s", res.Raw)
	}
}

func TestGivenCSR(t *testing.T) {
	k, _ := GenerateKey()
	csr, err := GenerateCSR("dev-1", k)
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, "CA")
	leaf := ca.sign(t, "dev-1", k.Public(), false)
	f := newFake(t, nil, step{status: 200, body: assigned(`,"issuedCertificateChain":["` + base64.StdEncoding.EncodeToString(leaf.Raw) + `"]`)})
	cfg := config(f, newClock())
	cfg.CSR = csr
	res, err := Register(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.PrivateKey != nil || len(res.IssuedCertificateChain) != 1 {
		t.Fatalf("result %+v", res)
	}
	var body struct{ CSR string }
	_ = json.Unmarshal([]byte(f.requests()[0].body), &body)
	if body.CSR != base64.StdEncoding.EncodeToString(csr) {
		t.Error("the CSR was not sent as base64 DER")
	}
}

// deviceCert is a leaf under an intermediate under a root.
func deviceCert(t *testing.T, cn string) (tls.Certificate, *testCA) {
	t.Helper()
	root := newCA(t, "Device Root")
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	inter := &testCA{cert: root.sign(t, "Device Intermediate", ik.Public(), true), key: ik}
	lk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := inter.sign(t, cn, lk.Public(), false)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, inter.cert.Raw}, PrivateKey: lk}, root
}

func TestX509Request(t *testing.T) {
	cert, root := deviceCert(t, "x509-dev-1")
	other := newCA(t, "Unrelated CA")
	otherPool := x509.NewCertPool()
	otherPool.AddCert(other.cert)
	cases := []struct {
		name  string
		tls   *tls.Config
		regID string
	}{
		{"registration ID from the leaf CN", &tls.Config{ClientAuth: tls.RequestClientCert}, ""},
		{"explicit registration ID", &tls.Config{ClientAuth: tls.RequestClientCert}, "x509-dev-1"},
		{"presented even when the server names other CAs", &tls.Config{ClientAuth: tls.RequestClientCert, ClientCAs: otherPool}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.tls, step{status: 202, body: assigningBody}, step{status: 200, body: strings.ReplaceAll(assigned(""), `"dev-1"`, `"x509-dev-1"`)})
			cfg := config(f, newClock())
			cfg.SymmetricKey = nil
			cfg.RegistrationID = tc.regID
			c := cert
			cfg.Certificate = &c
			res, err := Register(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.DeviceID != "x509-dev-1" {
				t.Errorf("device %q", res.DeviceID)
			}
			for i, r := range f.requests() {
				if r.auth != "" {
					t.Errorf("request %d carries an Authorization header", i)
				}
				if len(r.peer) != 2 || r.peer[0].Subject.CommonName != "x509-dev-1" || r.peer[1].Subject.CommonName != "Device Intermediate" {
					t.Fatalf("request %d presented %d certificates", i, len(r.peer))
				}
				if _, err := r.peer[0].Verify(x509.VerifyOptions{Roots: poolOf(root.cert), Intermediates: poolOf(r.peer[1]), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("presented chain does not verify: %v", err)
				}
			}
			if body := f.requests()[0].body; body != `{"registrationId":"x509-dev-1"}` {
				t.Errorf("body %s", body)
			}
		})
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestOneConnectionForTheWholeRegistration(t *testing.T) {
	f := newFake(t, nil,
		step{status: 503}, step{status: 202, body: assigningBody}, step{status: 202, body: assigningBody},
		step{status: 200, body: assigned("")})
	if _, err := Register(context.Background(), config(f, newClock())); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	for _, r := range reqs[1:] {
		if r.remote != reqs[0].remote {
			t.Fatalf("requests came over %s and %s", reqs[0].remote, r.remote)
		}
	}
}

func TestTLSTrustFailureIsFinal(t *testing.T) {
	f := newFake(t, nil, step{status: 200, body: assigned("")})
	clk := newClock()
	cfg := config(f, clk)
	cfg.RootCAs = x509.NewCertPool()
	_, err := Register(context.Background(), cfg)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("want an unknown-authority error, got %v", err)
	}
	if len(clk.Sleeps()) != 0 {
		t.Error("a TLS trust failure was retried")
	}
}

func TestContextEndsTheWait(t *testing.T) {
	f := newFake(t, nil, step{status: 202, body: assigningBody})
	clk := newClock()
	ctx, cancel := context.WithCancel(context.Background())
	clk.onSleep = cancel
	_, err := Register(ctx, config(f, clk))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestRealSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sleep: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("sleep ignored the context")
	}
}

func TestInvalidConfig(t *testing.T) {
	cert, _ := deviceCert(t, "x509-dev-1")
	k, _ := GenerateKey()
	csr, _ := GenerateCSR("dev-1", k)
	cases := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no endpoint", func(c *Config) { c.Endpoint = "" }},
		{"http endpoint", func(c *Config) { c.Endpoint = "http://dps.example" }},
		{"endpoint with a path", func(c *Config) { c.Endpoint = "dps.example/x" }},
		{"no ID scope", func(c *Config) { c.IDScope = "" }},
		{"ID scope with a slash", func(c *Config) { c.IDScope = "a/b" }},
		{"no credential", func(c *Config) { c.SymmetricKey = nil }},
		{"two credentials", func(c *Config) { c.GroupKey = testKey }},
		{"key and certificate", func(c *Config) { c.Certificate = &cert }},
		{"no registration ID", func(c *Config) { c.RegistrationID = "" }},
		{"bad registration ID", func(c *Config) { c.RegistrationID = "a b" }},
		{"payload not JSON", func(c *Config) { c.Payload = json.RawMessage("{") }},
		{"CSR and GenerateKey", func(c *Config) { c.CSR = csr; c.GenerateKey = true }},
		{"CSR not DER", func(c *Config) { c.CSR = []byte("-----BEGIN") }},
		{"certificate without key", func(c *Config) {
			c.SymmetricKey = nil
			c.Certificate = &tls.Certificate{Certificate: cert.Certificate}
		}},
		{"negative MaxWait", func(c *Config) { c.MaxWait = -1 }},
		{"EK certificate without TPM", func(c *Config) { c.TPMEKCertificate = []byte{0x30} }},
		{"EK certificate and a payload that is no object", func(c *Config) {
			c.SymmetricKey, c.TPM, c.TPMEKCertificate, c.Payload = nil, noTPM{}, []byte{0x30}, json.RawMessage(`[1]`)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Endpoint: "dps.example", IDScope: testScope, RegistrationID: "dev-1", SymmetricKey: testKey}
			tc.mutate(&cfg)
			if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("want ErrInvalidConfig, got %v", err)
			}
		})
	}
	t.Run("EK certificate joins the payload", func(t *testing.T) {
		c, err := New(Config{Endpoint: "dps.example", IDScope: testScope, RegistrationID: "dev-1", TPM: noTPM{}, TPMEKCertificate: []byte{1, 2, 3}, Payload: json.RawMessage(`{"model":"m1"}`)})
		if err != nil || string(c.cfg.Payload) != `{"model":"m1","tpmEkCertificate":"AQID"}` {
			t.Fatalf("payload %s, %v", c.cfg.Payload, err)
		}
	})
	t.Run("https prefix accepted", func(t *testing.T) {
		c, err := New(Config{Endpoint: "https://dps.example:8443/", IDScope: testScope, RegistrationID: "dev-1", SymmetricKey: testKey})
		if err != nil || c.endpoint != "dps.example:8443" {
			t.Fatalf("endpoint %v %v", c, err)
		}
	})
}

func TestGenerateCSR(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k.Curve != elliptic.P256() {
		t.Errorf("curve %s", k.Curve.Params().Name)
	}
	der, err := GenerateCSR("sym:dev.1_x", k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CSR: %v", err)
	}
	if csr.Subject.String() != "CN=sym:dev.1_x" || len(csr.Extensions) != 0 || len(csr.ExtraExtensions) != 0 {
		t.Errorf("subject %s, %d extensions", csr.Subject, len(csr.Extensions))
	}
	if _, err := GenerateCSR("bad id", k); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad registration ID: %v", err)
	}
}

// TestNoSecretsInLogsOrErrors captures the debug log of registrations
// that retry, poll and fail, and checks that no key or token appears.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	var logs bytes.Buffer
	f := newFake(t, nil, step{status: 503}, step{status: 202, body: assigningBody}, step{status: 401, body: errBody(401002, "Unauthorized")})
	cfg := config(f, newClock())
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err := Register(context.Background(), cfg)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("want ErrUnauthorized, got %v", err)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	tok, _ := sas.Parse(f.requests()[0].auth)
	out := logs.String() + err.Error()
	for name, secret := range map[string]string{
		"key":           base64.StdEncoding.EncodeToString(testKey),
		"raw key":       string(testKey),
		"signature":     base64.StdEncoding.EncodeToString(tok.Signature),
		"url signature": url.QueryEscape(base64.StdEncoding.EncodeToString(tok.Signature)),
		"token":         f.requests()[0].auth,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the logs or the error", name)
		}
	}
}

// noTPM is a TPMSecurity for configuration checks; it cannot attest.
type noTPM struct{}

func (noTPM) EndorsementKey() []byte                  { return []byte{0} }
func (noTPM) StorageRootKey() []byte                  { return []byte{0} }
func (noTPM) ActivateIdentityKey([]byte) error        { return errors.New("noTPM") }
func (noTPM) SignWithIdentity([]byte) ([]byte, error) { return nil, errors.New("noTPM") }
