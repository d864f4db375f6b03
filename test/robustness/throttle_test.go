package robustness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// throttleDevice is a symmetric-key device talking raw HTTPS to a real
// zdps serve, so that every answer is counted (pkg/device would retry
// the 429s).
type throttleDevice struct {
	srv   *zdpstest.Server
	hc    *http.Client
	regID string
	auth  string
}

// throttleAnswer is one answer: status, DPS errorCode, Retry-After.
type throttleAnswer struct {
	status, code int
	retryAfter   string
	operationID  string
}

func throttleNewDevice(t *testing.T, srv *zdpstest.Server, regID string, key []byte) *throttleDevice {
	t.Helper()
	auth := sas.Build(key, srv.IDScope()+"/registrations/"+regID, "registration", time.Now().Add(time.Hour))
	return &throttleDevice{srv: srv, hc: srv.HTTPClient(), regID: regID, auth: auth}
}

// throttleIndividual creates an individual symmetric-key enrollment and
// returns its device.
func throttleIndividual(t *testing.T, srv *zdpstest.Server, regID string) *throttleDevice {
	t.Helper()
	c := srv.Client()
	if _, err := c.PutEnrollment(t.Context(), &enrollment.IndividualEnrollment{
		RegistrationID: regID,
		Spec:           enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(t.Context(), regID)
	if err != nil {
		t.Fatal(err)
	}
	return throttleNewDevice(t, srv, regID, throttleKey(t, keys))
}

func throttleKey(t *testing.T, m *enrollment.AttestationMechanism) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(m.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func throttleHub(t *testing.T, srv *zdpstest.Server) {
	t.Helper()
	if _, err := srv.Client().PutHub(t.Context(), &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
}

func (d *throttleDevice) call(t *testing.T, method, path string, body []byte) throttleAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	u := "https://" + d.srv.Addr() + "/" + d.srv.IDScope() + "/registrations/" + d.regID + path + "?api-version=" + client.DefaultAPIVersion
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", d.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ErrorCode   int    `json:"errorCode"`
		OperationID string `json:"operationId"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
	}
	return throttleAnswer{status: resp.StatusCode, code: v.ErrorCode, retryAfter: resp.Header.Get("Retry-After"), operationID: v.OperationID}
}

func (d *throttleDevice) register(t *testing.T, payload json.RawMessage) throttleAnswer {
	t.Helper()
	return d.registerCSR(t, payload, nil)
}

// registerCSR registers with a CSR (DER) when csr is not nil.
func (d *throttleDevice) registerCSR(t *testing.T, payload json.RawMessage, csr []byte) throttleAnswer {
	t.Helper()
	m := map[string]any{"registrationId": d.regID, "payload": payload}
	if csr != nil {
		m["csr"] = base64.StdEncoding.EncodeToString(csr)
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return d.call(t, http.MethodPut, "/register", body)
}

// throttleCount tallies answers; every 429 must be the DPS throttle error
// with an integer Retry-After of at least 1 s, and nothing may be 5xx.
type throttleCount struct{ ok, throttled, other int }

func (c *throttleCount) add(t *testing.T, a throttleAnswer) {
	t.Helper()
	switch {
	case a.status == http.StatusOK:
		c.ok++
	case a.status == http.StatusTooManyRequests:
		c.throttled++
		if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 || a.code != 429001 {
			t.Fatalf("429 with Retry-After %q errorCode %d, want an integer >= 1 and 429001", a.retryAfter, a.code)
		}
	default:
		c.other++
		t.Errorf("answer %d (errorCode %d)", a.status, a.code)
	}
}

// throttleLogLines counts the server's log lines of throttled refusals and
// fails on any ERROR line.
func throttleLogLines(t *testing.T, srv *zdpstest.Server) int {
	t.Helper()
	logs := srv.Logs()
	if strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("ERROR in the log:\n%s", logs)
	}
	return strings.Count(logs, `"outcome":"throttled"`)
}

// TestThrottlePollFlood: a device polling its finished operation 100
// times in 2 s against a default `zdps serve` (5 polls per 10 s, Azure's
// limit) gets 5 or 6 answers 200 and the rest 429 with an integer
// Retry-After; the refusals are logged INFO, once, not 94 times.
func TestThrottlePollFlood(t *testing.T) {
	srv := zdpstest.Start(t)
	throttleHub(t, srv)
	d := throttleIndividual(t, srv, "throttle-poll-dev")
	reg := d.register(t, nil)
	if reg.status != http.StatusOK || reg.operationID == "" {
		t.Fatalf("register: %+v", reg)
	}
	var n throttleCount
	start := time.Now()
	for i := range 100 {
		// 100 polls spread over 2 s (each waits for its answer).
		if d := time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		n.add(t, d.call(t, http.MethodGet, "/operations/"+reg.operationID, nil))
	}
	elapsed := time.Since(start)
	lines := throttleLogLines(t, srv)
	t.Logf("100 polls in %s: %d answered 200, %d answered 429 (integer Retry-After), %d other; %d throttled log lines",
		elapsed.Round(time.Millisecond), n.ok, n.throttled, n.other, lines)
	// Burst of 5, then one per 2 s.
	if maxOK := 5 + int(elapsed/(2*time.Second)); n.ok < 5 || n.ok > maxOK || n.throttled != 100-n.ok {
		t.Errorf("%d polls admitted, %d throttled; want 5 to %d admitted, the rest throttled", n.ok, n.throttled, maxOK)
	}
	if lines < 1 || lines > 2 {
		t.Errorf("%d throttled log lines for %d refusals, want 1 or 2", lines, n.throttled)
	}
}

// TestThrottleRegisterFlood: one device key re-registering 300 times with
// a 64 KB payload and a new CSR each time (each admitted registration
// stores a certificate that stays until it expires). With the default limit (10 per minute per device) 10
// registrations are stored and the rest answered 429; with
// --throttle-register off all 300 are. Figures: stored, 429, zdps.db
// growth.
func TestThrottleRegisterFlood(t *testing.T) {
	const registrations = 300
	payload, err := json.Marshal(map[string]string{"blob": strings.Repeat("x", 64<<10-len(`{"blob":""}`))})
	if err != nil {
		t.Fatal(err)
	}
	growth := map[string]float64{}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"off", []string{"--throttle-register", "off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := zdpstest.Start(t, tc.args...)
			throttleHub(t, srv)
			d := throttleIndividual(t, srv, "throttle-reg-dev")
			db := filepath.Join(srv.DataDir, "zdps.db")
			before := throttleFileSize(t, db)
			var n throttleCount
			start := time.Now()
			for range registrations {
				n.add(t, d.registerCSR(t, payload, testpki.CSR(t, d.regID)))
			}
			elapsed := time.Since(start)
			srv.Stop() // the log is complete and the file closed
			after := throttleFileSize(t, db)
			stored := strings.Count(srv.Logs(), `"msg":"registration assigned"`)
			lines := throttleLogLines(t, srv)
			growth[tc.name] = mb(after - before)
			t.Logf("--throttle-register %s: %d registers of one device (64 KB payload, new CSR) in %s: %d stored, %d answered 429; zdps.db %.2f MB -> %.2f MB (growth %.2f MB); %d throttled log lines",
				map[string]string{"default": "10/1m", "off": "off"}[tc.name], registrations, elapsed.Round(time.Millisecond), stored, n.throttled, mb(before), mb(after), mb(after-before), lines)
			if stored != n.ok {
				t.Errorf("%d registrations stored (log), %d answered 200", stored, n.ok)
			}
			switch tc.name {
			case "default":
				if maxOK := 10 + int(elapsed/(6*time.Second)); n.ok < 10 || n.ok > maxOK || n.throttled != registrations-n.ok {
					t.Errorf("%d admitted, %d throttled; want 10 to %d admitted, the rest throttled", n.ok, n.throttled, maxOK)
				}
				if lines > 1+int(elapsed/(10*time.Second)) {
					t.Errorf("%d throttled log lines in %s, want one per 10 s", lines, elapsed)
				}
			case "off":
				if n.ok != registrations {
					t.Errorf("%d of %d admitted with the limit off", n.ok, registrations)
				}
			}
		})
	}
	if g, ok := growth["default"]; ok && g > growth["off"] {
		t.Errorf("zdps.db grew %.2f MB throttled, more than the %.2f MB unthrottled", g, growth["off"])
	}
}

func throttleFileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestThrottleGroupAndInstance: with --throttle-group-register 5/1m and
// --throttle-instance-register 8/1m, 10 devices of one group register
// once each (5 admitted, 5 answered 429 by the group limit), then 5
// individual devices (3 admitted: the instance had 8, 5 went to the
// group; 2 answered 429).
func TestThrottleGroupAndInstance(t *testing.T) {
	srv := zdpstest.Start(t, "--throttle-group-register", "5/1m", "--throttle-instance-register", "8/1m")
	throttleHub(t, srv)
	c := srv.Client()
	if _, err := c.PutGroup(t.Context(), &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "throttle-group",
		Spec:              enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.GroupKeys(t.Context(), "throttle-group")
	if err != nil {
		t.Fatal(err)
	}
	groupKey := throttleKey(t, keys)
	var grp, ind throttleCount
	for i := range 10 {
		id := fmt.Sprintf("throttle-g-%d", i)
		grp.add(t, throttleNewDevice(t, srv, id, sas.DeriveDeviceKey(groupKey, id)).register(t, nil))
	}
	for i := range 5 {
		ind.add(t, throttleIndividual(t, srv, fmt.Sprintf("throttle-i-%d", i)).register(t, nil))
	}
	t.Logf("group of 10 devices (5/1m): %d admitted, %d answered 429; then 5 individual devices (instance 8/1m): %d admitted, %d answered 429",
		grp.ok, grp.throttled, ind.ok, ind.throttled)
	if grp.ok != 5 || grp.throttled != 5 || ind.ok != 3 || ind.throttled != 2 {
		t.Errorf("group %d/%d, individual %d/%d admitted/throttled; want 5/5 and 3/2", grp.ok, grp.throttled, ind.ok, ind.throttled)
	}
	if !strings.Contains(srv.Logs(), `"limit":"group register"`) || !strings.Contains(srv.Logs(), `"limit":"instance register"`) {
		t.Errorf("the log does not name both limits:\n%s", srv.Logs())
	}
	throttleLogLines(t, srv)
}
