package interop

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestSlowWebhook: a custom allocation webhook that answers after 3 s,
// longer than --assign-wait 500ms. zdps answers the register PUT with 202
// assigning, completes the registration in the background, and both the
// official Node.js SDK and pkg/device (with a CSR) poll until assigned.
func TestSlowWebhook(t *testing.T) {
	const hookDelay = 3 * time.Second
	srv := zdpstest.Start(t, "--assign-wait", "500ms", "--allocation-webhook-timeout", "10s", "--allocation-webhook-retries", "0")
	scope := srv.IDScope()
	addHubs(t, srv, "hub-a.example.net", "hub-slow.example.net")

	var mu sync.Mutex
	calls := map[string]int{}
	hook := slowHook(hookDelay, func(regID string) {
		mu.Lock()
		calls[regID]++
		mu.Unlock()
	})
	defer hook.Close()
	key := groupKey(t, srv, &enrollment.EnrollmentGroup{EnrollmentGroupID: "slow-custom", Spec: enrollment.Spec{AllocationPolicy: enrollment.PolicyCustom,
		CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: hook.URL + "/allocate", APIVersion: "2019-03-31"}}})

	// Both devices register at once: the test takes one webhook delay.
	t.Run("devices", func(t *testing.T) {
		t.Run("node SDK", func(t *testing.T) {
			t.Parallel()
			res := nodeDevice(t, srv, scope, "node-slow-1", deviceKey(key, "node-slow-1"))
			if !res.OK || res.Status != "assigned" || res.AssignedHub != "hub-slow.example.net" || res.DeviceID != "node-slow-1" {
				t.Fatalf("%+v\n%s", res, srv.Logs())
			}
		})
		t.Run("pkg/device", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := device.Register(ctx, device.Config{
				Endpoint: srv.Addr(), IDScope: scope, RegistrationID: "go-slow-1",
				GroupKey: key, GenerateKey: true, RootCAs: srv.RootCAs(), MaxWait: 30 * time.Second,
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, srv.Logs())
			}
			if res.AssignedHub != "hub-slow.example.net" || res.DeviceID != "go-slow-1" || len(res.IssuedCertificateChain) != 3 {
				t.Fatalf("result %+v", res)
			}
			if res.IssuedCertificateChain[0].Subject.CommonName != "go-slow-1" {
				t.Fatalf("leaf CN %q", res.IssuedCertificateChain[0].Subject.CommonName)
			}
		})
	})

	// Each device went through 202 + polling, and the webhook ran once per
	// device (polls and the SDKs' retries did not start new runs).
	srv.LogContains("continues in the background") // the log reaches the test through a pipe
	for _, id := range []string{"node-slow-1", "go-slow-1"} {
		if !backgroundLogged(srv.Logs(), id) {
			t.Errorf("%s: no \"registration continues in the background\" in the log: the register PUT did not answer 202\n%s", id, srv.Logs())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["node-slow-1"] != 1 || calls["go-slow-1"] != 1 {
		t.Fatalf("webhook calls %v, want one per device", calls)
	}
	for _, id := range []string{"node-slow-1", "go-slow-1"} {
		rec, err := srv.Client().GetRegistration(context.Background(), id)
		if err != nil || rec.Status != enrollment.RegistrationAssigned || rec.AssignedHub != "hub-slow.example.net" {
			t.Fatalf("%s: record %+v %v", id, rec, err)
		}
	}
}

// slowHook is a custom allocation webhook that answers hub-slow.example.net
// after delay, calling onCall with the registration ID of each call first.
func slowHook(delay time.Duration, onCall func(regID string)) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			DeviceRuntimeContext struct {
				RegistrationID string `json:"registrationId"`
			} `json:"deviceRuntimeContext"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &req)
		onCall(req.DeviceRuntimeContext.RegistrationID)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"iotHubHostName":"hub-slow.example.net"}`)
	}))
}

// backgroundLogged reports whether the JSON log says the registration of
// regID continued in the background.
func backgroundLogged(logs, regID string) bool {
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m["msg"] == "registration continues in the background" && m["registration_id"] == regID {
			return true
		}
	}
	return false
}
