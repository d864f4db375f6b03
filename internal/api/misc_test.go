package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// normalise replaces the values that differ between runs (random ETags and
// request IDs, times) so that an answer can be compared with a golden file.
func normalise(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, val := range x {
				switch k {
				case "etag", "trackingId": // random; the clock is fixed
					x[k] = "<" + k + ">"
				default:
					walk(val)
				}
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(v)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got: %s\nwant: %s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	e := newEnv(t)
	body := `{
		"registrationId": "golden-device",
		"deviceId": "golden-device",
		"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": "` + strings.Repeat("A", 43) + `=", "secondaryKey": ""}},
		"capabilities": {"iotEdge": false},
		"iotHubHostName": "hub-1.example.com",
		"initialTwin": {"tags": {"site": "berlin"}, "properties": {"desired": {"interval": 30}}},
		"provisioningStatus": "enabled",
		"reprovisionPolicy": {"updateHubAssignment": true, "migrateDeviceData": false},
		"allocationPolicy": "static",
		"iotHubs": ["hub-1.example.com"]
	}`
	// A static enrollment needs its hub linked first.
	e.must(req{method: http.MethodPut, path: "/enrollments/golden-device", body: body}, http.StatusBadRequest)
	e.must(req{method: http.MethodPut, path: "/hubs/hub-1.example.com", body: `{"name":"hub-1.example.com"}`}, http.StatusOK)
	e.must(req{method: http.MethodPut, path: "/enrollments/golden-device", body: body}, http.StatusOK)
	r := e.must(req{method: http.MethodGet, path: "/enrollments/golden-device"}, http.StatusOK)
	golden(t, "enrollment.golden.json", normalise(t, r.body))

	r = e.must(req{method: http.MethodGet, path: "/enrollments/nobody"}, http.StatusNotFound)
	golden(t, "error-notfound.golden.json", normalise(t, r.body))
}

// TestLogs runs a full management session and checks the logs: an access
// line per request with the fixed keys, audit events for changes, and no
// key, token or signature anywhere.
func TestLogs(t *testing.T) {
	e := newEnv(t)
	k := newKey(t)
	e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1", k)}, http.StatusOK)
	e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1", "bad key")}, http.StatusBadRequest)
	r := e.must(req{method: http.MethodPost, path: "/enrollments/dev-1/attestationmechanism"}, http.StatusOK)
	var att enrollment.AttestationMechanism
	r.decode(t, &att)
	e.must(req{method: http.MethodPut, path: "/policies/p2", body: map[string]any{"keyName": "p2", "rights": "EnrollmentRead"}}, http.StatusOK)
	r = e.must(req{method: http.MethodPost, path: "/policies/p2/keys"}, http.StatusOK)
	var p2 enrollment.SharedAccessPolicy
	r.decode(t, &p2)
	forged := tokenWith(t, newKey(t), e.host, enrollment.OwnerPolicyName, testNow.Add(time.Hour))
	e.must(req{method: http.MethodGet, path: "/enrollments/dev-1", token: forged}, http.StatusUnauthorized)
	e.must(req{method: http.MethodPost, path: "/enrollments", body: bulkBody("create", symEnrollment("dev-2", newKey(t)))}, http.StatusOK)
	e.must(req{method: http.MethodDelete, path: "/enrollments/dev-1"}, http.StatusNoContent)

	logs := e.logs.String()
	secrets := []string{k, att.SymmetricKey.SecondaryKey, p2.PrimaryKey, p2.SecondaryKey, e.owner.PrimaryKey, e.owner.SecondaryKey, e.ownerTok, forged, "SharedAccessSignature", "sig="}
	for _, tok := range []string{e.ownerTok, forged} {
		_, sig, _ := strings.Cut(tok, "sig=")
		sig, _, _ = strings.Cut(sig, "&")
		secrets = append(secrets, sig)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("logs contain a secret %.12q...", s)
		}
	}
	var access, audits int
	actions := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch m["msg"] {
		case "request":
			access++
			for _, k := range []string{"request_id", "method", "route", "status", "duration"} {
				if _, ok := m[k]; !ok {
					t.Errorf("access log without %s: %s", k, line)
				}
			}
		case "audit":
			audits++
			actions[m["action"].(string)+" "+m["resource"].(string)] = true
			if m["policy"] != enrollment.OwnerPolicyName || m["id"] == "" {
				t.Errorf("audit line %s", line)
			}
		}
	}
	if access != 8 {
		t.Errorf("%d access log lines, want 8", access)
	}
	for _, a := range []string{"create enrollment", "read-keys enrollment", "create policy", "read-keys policy", "delete enrollment"} {
		if !actions[a] {
			t.Errorf("no audit event %q in %v", a, actions)
		}
	}
	if audits != 6 {
		t.Errorf("%d audit events, want 6", audits)
	}
}

// TestMount mounts device-style routes next to the service API: they
// are served under the common middleware (decoded IDs, recovery) and do
// not collide with /registrations/{id}.
func TestMount(t *testing.T) {
	logs := &syncBuffer{}
	a, err := New(Config{Store: store.New(memory.New(), nil), HostName: "localhost", Logger: slogJSON(logs)})
	if err != nil {
		t.Fatal(err)
	}
	a.Mount(func(r chi.Router) {
		r.With(a.RequireAPIVersion).
			Put("/{idScope}/registrations/{registrationId}/register", func(w http.ResponseWriter, r *http.Request) {
				a.writeJSON(w, http.StatusOK, map[string]string{"idScope": chi.URLParam(r, "idScope"), "registrationId": chi.URLParam(r, "registrationId")})
			})
		r.Get("/{idScope}/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
		r.Get("/{idScope}/fail", func(w http.ResponseWriter, r *http.Request) {
			a.WriteError(w, r, errors.New("disk on fire"))
		})
	})
	srv := httptest.NewTLSServer(a.Handler())
	defer srv.Close()
	get := func(method, path string) (int, []byte) {
		t.Helper()
		rq, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := srv.Client().Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := get(http.MethodPut, "/0ne00ABC123/Registrations/sym%3adev.1_x/Register?api-version=2021-06-01")
	if status != 200 || string(body) != `{"idScope":"0ne00ABC123","registrationId":"sym:dev.1_x"}` {
		t.Fatalf("device route: %d %s", status, body)
	}
	if status, _ := get(http.MethodPut, "/0ne00ABC123/registrations/dev/register?api-version=1"); status != 400 {
		t.Errorf("device route without a valid api-version: %d", status)
	}
	if status, _ := get(http.MethodGet, "/registrations/dev?api-version=2021-10-01"); status != http.StatusUnauthorized {
		t.Errorf("service route shadowed: %d", status)
	}
	for _, path := range []string{"/0ne00ABC123/panic", "/0ne00ABC123/fail"} {
		status, body = get(http.MethodGet, path)
		var eb dps.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || status != 500 || eb.ErrorCode != dps.CodeInternal || eb.Message != msgInternal {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
	if !strings.Contains(logs.String(), "disk on fire") || !strings.Contains(logs.String(), "boom") {
		t.Error("fault details missing from the log")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	st := store.New(memory.New(), nil)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no store", Config{HostName: "h", Logger: discardLogger()}},
		{"no host", Config{Store: st, Logger: discardLogger()}},
		{"host with path", Config{Store: st, HostName: "h/x", Logger: discardLogger()}},
		{"no logger", Config{Store: st, HostName: "h"}},
		{"negative limit", Config{Store: st, HostName: "h", Logger: discardLogger(), MaxBulkItems: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	a, err := New(Config{Store: st, HostName: "h", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.MaxBodyBytes != DefaultMaxBodyBytes || a.cfg.MaxBulkItems != DefaultMaxBulkItems || a.cfg.MaxPageSize != DefaultMaxPageSize || a.cfg.TokenSkew != DefaultTokenSkew {
		t.Errorf("defaults not applied: %+v", a.cfg)
	}
}

func TestHealthzStoreClosed(t *testing.T) {
	b := memory.New()
	a, err := New(Config{Store: store.New(b, nil), HostName: "h", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("closed store: %d %v", rec.Code, rec.Header())
	}
}

// TestUnderOuterRouter: cmd/zdps may mount Handler() on its own chi router;
// case-insensitive, percent-decoded routing must survive that.
func TestUnderOuterRouter(t *testing.T) {
	st := store.New(memory.New(), func() time.Time { return testNow })
	owner := &enrollment.SharedAccessPolicy{KeyName: enrollment.OwnerPolicyName, Rights: strings.Join(enrollment.AllRights, ", ")}
	if err := owner.GenerateMissingKeys(strings.NewReader(strings.Repeat("k", 256))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Policies.Put(context.Background(), owner, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Store: st, HostName: "localhost", Logger: discardLogger(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	outer := chi.NewRouter()
	outer.Mount("/", a.Handler())
	tok := tokenWith(t, owner.PrimaryKey, "localhost", owner.KeyName, testNow.Add(time.Hour))
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPut, "/ENROLLMENTS/sym%3adev?api-version=2021-10-01", `{"registrationId":"sym:dev","attestation":{"type":"symmetricKey"}}`, 200},
		{http.MethodGet, "/enrollments/SYM:DEV?api-version=2021-10-01", "", 200},
		{http.MethodPost, "/enrollments/?api-version=2021-10-01", `{"mode":"delete","enrollments":[{"registrationId":"sym:dev"}]}`, 200},
		{http.MethodGet, "/enrollments/sym%3adev?api-version=2021-10-01", "", 404},
	} {
		rq := httptest.NewRequestWithContext(context.Background(), tc.method, tc.path, strings.NewReader(tc.body))
		rq.Header.Set("Authorization", tok)
		rec := httptest.NewRecorder()
		outer.ServeHTTP(rec, rq)
		if rec.Code != tc.status {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
}
