package secops_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/custom"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func linkHub(t *testing.T, s *zdpstest.Server) {
	t.Helper()
	if _, err := s.Client().PutHub(context.Background(), &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
}

func register(t *testing.T, s *zdpstest.Server, id string, key []byte) {
	t.Helper()
	res, err := device.Register(context.Background(), device.Config{Endpoint: s.Addr(), IDScope: s.IDScope(), RegistrationID: id, SymmetricKey: key, RootCAs: s.RootCAs(), GenerateKey: true})
	if err != nil || res.Status != "assigned" {
		t.Fatalf("register %s: %v %v", id, res, err)
	}
}

// serviceGet calls a service API route with the owner policy's SAS and
// decodes its JSON answer.
func serviceGet(t *testing.T, s *zdpstest.Server, path string, out any) {
	t.Helper()
	var b string
	serviceGetRaw(t, s, path, &b)
	if err := json.Unmarshal([]byte(b), out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

func serviceGetRaw(t *testing.T, s *zdpstest.Server, path string, out *string) {
	t.Helper()
	cs, err := client.ParseConnectionString(s.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(cs.SharedAccessKey)
	req, _ := http.NewRequest(http.MethodGet, "https://"+s.Addr()+path, nil)
	q := req.URL.Query()
	q.Set("api-version", dps.APIVersions[len(dps.APIVersions)-1])
	req.URL.RawQuery = q.Encode()
	req.Header.Set("Authorization", sas.Build(key, cs.HostName, cs.SharedAccessKeyName, time.Now().Add(time.Hour)))
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	*out = string(b)
}

// A real Prometheus scrapes zdps's metrics listener, and a PromQL query
// over its HTTP API returns the registrations the test made.
func TestPrometheusScrapesRegistrations(t *testing.T) {
	t.Parallel()
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed (make test-setup installs Debian's package)")
	}
	mport := freePort(t)
	tokenFile := filepath.Join(t.TempDir(), "scrape-token")
	_ = os.WriteFile(tokenFile, []byte("scrape-token-0123456789\n"), 0o600)
	s := zdpstest.Start(t, "--metrics-listen", "127.0.0.1:"+mport, "--metrics-token-file", tokenFile)
	linkHub(t, s)
	// On the main listener /metrics needs the scrape token or a SAS.
	for _, tc := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong-token-0123456789", http.StatusUnauthorized}, {"Bearer scrape-token-0123456789", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.Addr()+"/metrics", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("/metrics with %q: %s, want %d", tc.auth, resp.Status, tc.want)
		}
	}
	var body string
	serviceGetRaw(t, s, "/metrics", &body)
	if !strings.Contains(body, "zdps_build_info") {
		t.Errorf("/metrics with a SAS lacks zdps_build_info")
	}
	for i := range 3 {
		id := fmt.Sprintf("prom-%d", i)
		register(t, s, id, s.SymmetricKeyEnrollment(id))
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: zdps\n    static_configs:\n      - targets: ['127.0.0.1:%s']\n", mport)), 0o600); err != nil {
		t.Fatal(err)
	}
	pport := freePort(t)
	cmd := exec.Command(prom, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:"+pport)
	logs := &syncBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	query := "http://127.0.0.1:" + pport + "/api/v1/query?query=" + url.QueryEscape(`sum(zdps_registrations_total{outcome="assigned",transport="https"})`)
	var last string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		resp, err := http.Get(query)
		if err != nil {
			last = err.Error()
			continue
		}
		var ans struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if err != nil || ans.Status != "success" || len(ans.Data.Result) == 0 {
			last = fmt.Sprintf("%+v %v", ans, err)
			continue
		}
		if v, _ := ans.Data.Result[0].Value[1].(string); v == "3" {
			return
		} else {
			last = "value " + v
		}
	}
	t.Fatalf("Prometheus never answered 3 registrations (last: %s)\n%s", last, logs.String())
}

type syncBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return string(s.b) }

// receiver is a SIEM's HTTPS intake that deduplicates by event ID.
type receiver struct {
	secret []byte
	down   atomic.Bool
	mu     sync.Mutex
	seen   map[string]int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := custom.Verify(rc.secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if rc.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var evs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	for _, e := range evs {
		rc.seen[e.ID]++
	}
	rc.mu.Unlock()
}

func (rc *receiver) ids() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.seen))
	for k, v := range rc.seen {
		out[k] = v
	}
	return out
}

// The SIEM webhook loses nothing when the receiver is down for a minute
// and zdps is killed with SIGKILL while events are waiting: after the
// restart every event in the trail reaches the receiver (at least once;
// after deduplication exactly the trail's events).
func TestExportSurvivesOutageAndKill(t *testing.T) {
	t.Parallel()
	rc := &receiver{secret: []byte("siem-shared-secret"), seen: map[string]int{}}
	rc.down.Store(true)
	srv := httptest.NewTLSServer(rc)
	defer srv.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "receiver-ca.pem")
	_ = os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	secretFile := filepath.Join(dir, "secret")
	_ = os.WriteFile(secretFile, rc.secret, 0o600)
	s := zdpstest.StartIn(t, filepath.Join(dir, "data"), "--audit-export", srv.URL+"/intake", "--audit-export-ca-file", caFile, "--audit-export-secret-file", secretFile)

	ctx := context.Background()
	c := s.Client()
	linkHub(t, s)
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: "siem", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}}}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.GroupKeys(ctx, "siem")
	if err != nil {
		t.Fatal(err)
	}
	gk, _ := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	load := zdpstest.StartLoad(t, s, zdpstest.LoadConfig{Group: "siem", GroupKey: gk, Prefix: "a", Workers: 4})
	load.WaitAcked(40, 60*time.Second)
	// The receiver stays down for a minute; zdps dies in the middle of it
	// with events recorded and not delivered.
	downUntil := time.Now().Add(time.Minute)
	time.Sleep(5 * time.Second)
	load.Stop()
	s.Kill()
	s.Args = append([]string(nil), s.Args...)
	s.Restart()
	load2 := zdpstest.StartLoad(t, s, zdpstest.LoadConfig{Group: "siem", GroupKey: gk, Prefix: "b", Workers: 4})
	load2.WaitAcked(20, 60*time.Second)
	load2.Stop()
	time.Sleep(time.Until(downUntil))
	rc.down.Store(false)

	// Every event of the trail arrives (the exporter backs off up to 30 s).
	var rep dps.AuditReport
	var got map[string]int
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		serviceGet(t, s, "/audit/verify", &rep)
		got = rc.ids()
		if rep.Pending == 0 && rep.Problem == nil && len(got) >= rep.Entries && rep.Entries > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d distinct events; the trail %+v", len(got), rep)
		}
	}
	var all []dps.SealedAuditEvent
	for after := uint64(0); ; {
		var page dps.AuditPage
		serviceGet(t, s, "/audit?limit=1000&after="+strconv.FormatUint(after, 10), &page)
		all = append(all, page.Events...)
		if len(page.Events) == 0 {
			break
		}
		after = page.Next
	}
	assigned := 0
	for _, e := range all {
		if got[e.ID] == 0 {
			t.Errorf("event %d (%s %s) never reached the receiver", e.Seq, e.Action, e.ID)
		}
		if e.Action == "registration.assigned" {
			assigned++
		}
	}
	if len(got) != len(all) {
		t.Errorf("receiver has %d distinct events, the trail %d", len(got), len(all))
	}
	if acked := len(load.Acked()) + len(load2.Acked()); assigned < acked {
		t.Errorf("%d registrations acknowledged, %d assigned events in the trail", acked, assigned)
	}
	t.Logf("%d events exported across the outage and the kill; %d delivered more than once", len(all), dupes(got))
}

func dupes(m map[string]int) int {
	n := 0
	for _, v := range m {
		if v > 1 {
			n++
		}
	}
	return n
}

// A benign fleet of 10,000 devices registering through `zdps bench`
// raises no alert; a brute force afterwards raises exactly one, which
// also proves the detector read the whole benign run (it reads the trail
// in order).
func TestBenignBenchRaisesNoAlert(t *testing.T) {
	t.Parallel()
	s := zdpstest.Start(t)
	out, err := exec.Command(zdpstest.Binary(t), "bench", "--data-dir", s.DataDir, "--endpoint", s.Addr(), "--setup", "--attestation", "symmetric-group",
		"--devices", "10000", "--concurrency", "32", "--csr=false", "--progress=false", "--prefix", "benign").CombinedOutput()
	if err != nil {
		t.Fatalf("zdps bench: %v\n%s", err, out)
	}
	key := s.SymmetricKeyEnrollment("victim")
	key[0] ^= 0xff
	for i := range 12 {
		_, err := device.Register(context.Background(), device.Config{Endpoint: s.Addr(), IDScope: s.IDScope(), RegistrationID: "victim", SymmetricKey: key, RootCAs: s.RootCAs(), MaxRetries: 0})
		if err == nil {
			t.Fatalf("attempt %d with a wrong key registered", i)
		}
	}
	var alerts []dps.Alert
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		serviceGet(t, s, "/alerts", &alerts)
		if len(alerts) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(alerts) != 1 || alerts[0].Rule != "brute-force" || alerts[0].RegistrationID != "victim" {
		t.Fatalf("alerts after a benign bench and one brute force: %+v\n%s", alerts, out)
	}
	var page dps.AuditPage
	serviceGet(t, s, "/audit?action=registration.assigned&limit=1", &page)
	if len(page.Events) == 0 {
		t.Fatal("no registration in the trail")
	}
	// Reading keys changes nothing, and is in the trail all the same.
	serviceGet(t, s, "/audit?action=enrollment.read-keys", &page)
	if len(page.Events) != 1 || page.Events[0].Resource != "enrollment/victim" || page.Events[0].Actor != "policy:provisioningserviceowner" {
		t.Fatalf("read-keys events: %+v", page.Events)
	}
}
