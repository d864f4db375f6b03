package interop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/custom"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// groupKey creates a symmetric-key group and returns its decoded key.
func groupKey(t *testing.T, srv *zdpstest.Server, g *enrollment.EnrollmentGroup) []byte {
	t.Helper()
	ctx := context.Background()
	g.Attestation = &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}
	if _, err := srv.Client().PutGroup(ctx, g, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := srv.Client().GroupKeys(ctx, g.EnrollmentGroupID)
	if err != nil {
		t.Fatal(err)
	}
	k, err := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func deviceKey(groupKey []byte, regID string) string {
	return "SYMMETRIC_KEY=" + base64.StdEncoding.EncodeToString(sas.DeriveDeviceKey(groupKey, regID))
}

// TestNodeSDKAllocationPolicies: the official Node.js SDK provisions under
// a group with the static policy and under a group with the custom policy
// (a webhook on 127.0.0.1 that checks zdps's signature), and sees the
// webhook's failure as a failed registration.
func TestNodeSDKAllocationPolicies(t *testing.T) {
	const secret = "interop-webhook-secret"
	srv := zdpstest.Start(t, "--allocation-webhook-secret", secret, "--allocation-webhook-timeout", "2s", "--allocation-webhook-retries", "1")
	scope := srv.IDScope()
	hubs := []string{"hub-a.example.net", "hub-b.example.net", "hub-c.example.net"}
	addHubs(t, srv, hubs...)

	var mu sync.Mutex
	var seen []map[string]any
	sigErrs := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := custom.Verify([]byte(secret), r.Header, b, time.Now(), 5*time.Minute); err != nil {
			sigErrs++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req map[string]any
		_ = json.Unmarshal(b, &req)
		seen = append(seen, req)
		rc, _ := req["deviceRuntimeContext"].(map[string]any)
		if id, _ := rc["registrationId"].(string); strings.HasPrefix(id, "node-custom-broken") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"iotHubHostName":"hub-c.example.net","initialTwin":{"tags":{"line":"7"}},"payload":{"from":"webhook"}}`)
	}))
	defer hook.Close()

	staticKey := groupKey(t, srv, &enrollment.EnrollmentGroup{EnrollmentGroupID: "node-static", Spec: enrollment.Spec{AllocationPolicy: enrollment.PolicyStatic, IoTHubs: []string{"hub-b.example.net"},
		InitialTwin: &enrollment.InitialTwin{Tags: json.RawMessage(`{"site":"b"}`)}}})
	customKey := groupKey(t, srv, &enrollment.EnrollmentGroup{EnrollmentGroupID: "node-custom", Spec: enrollment.Spec{AllocationPolicy: enrollment.PolicyCustom,
		CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: hook.URL + "/api/allocate?code=abc", APIVersion: "2019-03-31"}}})

	t.Run("static", func(t *testing.T) {
		for _, id := range []string{"node-static-1", "node-static-2", "node-static-3"} {
			res := nodeDevice(t, srv, scope, id, deviceKey(staticKey, id))
			if !res.OK || res.AssignedHub != "hub-b.example.net" {
				t.Fatalf("%s: %+v\n%s", id, res, srv.Logs())
			}
		}
		checkInitialTwin(t, srv, "node-static-1", `{"tags":{"site":"b"}}`)
	})
	t.Run("custom", func(t *testing.T) {
		res := nodeDevice(t, srv, scope, "node-custom-1", deviceKey(customKey, "node-custom-1"), `PAYLOAD={"model":"x1"}`)
		if !res.OK || res.AssignedHub != "hub-c.example.net" {
			t.Fatalf("%+v\n%s", res, srv.Logs())
		}
		if !strings.Contains(string(res.Raw), `"from":"webhook"`) {
			t.Errorf("the webhook's payload did not reach the device: %s", res.Raw)
		}
		checkInitialTwin(t, srv, "node-custom-1", `{"tags":{"line":"7"}}`)
		if strings.Contains(string(res.Raw), "initialTwin") {
			t.Errorf("the device was shown the initial twin meant for its hub: %s", res.Raw)
		}
		mu.Lock()
		defer mu.Unlock()
		if sigErrs != 0 || len(seen) != 1 {
			t.Fatalf("webhook saw %d valid requests and %d bad signatures", len(seen), sigErrs)
		}
		req := seen[0]
		rc := req["deviceRuntimeContext"].(map[string]any)
		if rc["registrationId"] != "node-custom-1" || rc["payload"].(map[string]any)["model"] != "x1" || rc["symmetricKey"] == nil {
			t.Errorf("deviceRuntimeContext %v", rc)
		}
		if g := req["enrollmentGroup"].(map[string]any); g["enrollmentGroupId"] != "node-custom" {
			t.Errorf("enrollmentGroup %v", g)
		}
		if lh := req["linkedHubs"].([]any); len(lh) != 3 {
			t.Errorf("linkedHubs %v", lh)
		}
	})
	t.Run("custom webhook failing", func(t *testing.T) {
		res := nodeDevice(t, srv, scope, "node-custom-broken", deviceKey(customKey, "node-custom-broken"))
		if res.OK {
			t.Fatalf("registration succeeded: %+v", res)
		}
		// The SDK reports status "failed" as an error; the errorMessage it
		// was given is the one the server logged with the outcome.
		want, _ := json.Marshal("allocation failed: " + (&custom.WebhookError{Kind: custom.KindStatus, StatusCode: 500, Attempts: 2}).Error())
		if !srv.LogContains(`"reason":` + string(want)) {
			t.Fatalf("no failed outcome with %s in the server log:\n%s", want, srv.Logs())
		}
		if res.StatusCode != nil && *res.StatusCode >= 400 {
			t.Fatalf("a webhook failure is a failed registration, not an HTTP error: %+v", res)
		}
	})
	t.Run("device counts", func(t *testing.T) {
		counts := map[string]int{}
		for h, err := range srv.Client().Hubs(context.Background(), 0) {
			if err != nil {
				t.Fatal(err)
			}
			counts[h.Name] = *h.DeviceCount
		}
		if counts["hub-b.example.net"] != 3 || counts["hub-c.example.net"] != 1 || counts["hub-a.example.net"] != 0 {
			t.Fatalf("device counts %v", counts)
		}
	})
}

// checkInitialTwin: the service API's registration record carries the
// initial twin zdps recorded for the hub.
func checkInitialTwin(t *testing.T, srv *zdpstest.Server, id, want string) {
	t.Helper()
	st, err := srv.Client().GetRegistration(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if string(st.InitialTwin) != want {
		t.Errorf("registration %s: initialTwin %s, want %s", id, st.InitialTwin, want)
	}
}
