package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/zdps/zdps/allocation/custom"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestCreateOnlyPut: If-None-Match: * makes every PUT a create that
// answers 409 when the resource exists, so two admins cannot overwrite
// each other.
func TestCreateOnlyPut(t *testing.T) {
	e := newEnv(t)
	k := newKey(t)
	tests := []struct {
		name, path string
		body       any
	}{
		{"hub", "/hubs/hub-1.example.com", `{"name":"hub-1.example.com"}`},
		{"policy", "/policies/ops", `{"keyName":"ops","rights":"EnrollmentRead"}`},
		{"enrollment", "/enrollments/dev-1", symEnrollment("dev-1", k)},
		{"group", "/enrollmentGroups/grp-1", symGroup("grp-1", k)},
	}
	createOnly := map[string]string{"If-None-Match": "*"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.must(req{method: http.MethodPut, path: tc.path, body: tc.body, header: createOnly}, http.StatusOK)
			r := e.must(req{method: http.MethodPut, path: tc.path, body: tc.body, header: createOnly}, http.StatusConflict)
			if eb := r.errBody(t); eb.ErrorCode != dps.CodeConflict {
				t.Fatalf("errorCode %d", eb.ErrorCode)
			}
			e.must(req{method: http.MethodPut, path: tc.path, body: tc.body}, http.StatusOK) // a plain PUT still replaces
			e.must(req{method: http.MethodPut, path: tc.path, body: tc.body, header: map[string]string{"If-None-Match": `"abc"`}}, http.StatusBadRequest)
		})
	}
	t.Run("settings", func(t *testing.T) {
		e.must(req{method: http.MethodPut, path: "/settings", body: `{"defaultAllocationPolicy":"hashed"}`, header: createOnly}, http.StatusOK)
		e.must(req{method: http.MethodPut, path: "/settings", body: `{"defaultAllocationPolicy":"hashed"}`, header: createOnly}, http.StatusConflict)
	})
}

func TestStaticEnrollmentNeedsLinkedHub(t *testing.T) {
	e := newEnv(t)
	k := newKey(t)
	static := func(id string, hubs ...string) map[string]any {
		m := symEnrollment(id, k)
		m["allocationPolicy"] = "static"
		m["iotHubs"] = hubs
		return m
	}
	tests := []struct {
		name   string
		body   map[string]any
		status int
	}{
		{"unlinked static hub", static("dev-1", "nowhere.example.com"), http.StatusBadRequest},
		{"two hubs", static("dev-2", "a.example.com", "b.example.com"), http.StatusBadRequest},
		{"linked static hub", static("dev-3", "linked.example.com"), http.StatusOK},
		{"unlinked iotHubHostName", func() map[string]any {
			m := symEnrollment("dev-4", k)
			m["iotHubHostName"] = "nowhere.example.com"
			return m
		}(), http.StatusBadRequest},
	}
	e.must(req{method: http.MethodPut, path: "/hubs/linked.example.com", body: `{"name":"linked.example.com"}`}, http.StatusOK)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(req{method: http.MethodPut, path: "/enrollments/" + tc.body["registrationId"].(string), body: tc.body}, tc.status)
			if tc.status != http.StatusOK {
				t.Logf("message: %s", r.errBody(t).Message)
			}
		})
	}
	t.Run("bulk", func(t *testing.T) {
		r := e.must(req{method: http.MethodPost, path: "/enrollments", body: map[string]any{"mode": "create", "enrollments": []any{static("dev-5", "nowhere.example.com"), static("dev-6", "linked.example.com")}}}, http.StatusOK)
		var res enrollment.BulkOperationResult
		r.decode(t, &res)
		if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].RegistrationID != "dev-5" {
			t.Fatalf("%+v", res)
		}
	})
}

func TestHubDeviceCounts(t *testing.T) {
	e := newEnv(t)
	e.must(req{method: http.MethodPut, path: "/hubs/a.example.com", body: `{"name":"a.example.com","capacity":10,"latitude":52.5,"longitude":13.4,"status":"draining","deviceCount":99}`}, http.StatusOK)
	e.must(req{method: http.MethodPut, path: "/hubs/b.example.com", body: `{"name":"b.example.com"}`}, http.StatusOK)
	for i := range 3 {
		rec := &enrollment.Registration{RegistrationID: fmt.Sprintf("d%d", i), AssignedHub: "a.example.com", Status: enrollment.RegistrationAssigned}
		if _, err := e.st.Registrations.Put(context.Background(), rec, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	var hubs []enrollment.Hub
	e.must(req{method: http.MethodGet, path: "/hubs"}, http.StatusOK).decode(t, &hubs)
	if len(hubs) != 2 || *hubs[0].DeviceCount != 3 || *hubs[1].DeviceCount != 0 || hubs[0].Status != enrollment.HubDraining || hubs[0].Capacity != 10 {
		t.Fatalf("%+v", hubs)
	}
	var h enrollment.Hub
	e.must(req{method: http.MethodGet, path: "/hubs/A.example.com"}, http.StatusOK).decode(t, &h)
	if h.DeviceCount == nil || *h.DeviceCount != 3 {
		t.Fatalf("%+v", h)
	}
}

type fakeExplainer struct{}

func (fakeExplainer) Explain(_ context.Context, r provisioning.ExplainRequest) (*dps.Explanation, error) {
	switch r.RegistrationID {
	case "unknown":
		return nil, fmt.Errorf("%w: no enrollment", port.ErrNotFound)
	case "bad id":
		return nil, fmt.Errorf("%w: bad", port.ErrInvalid)
	}
	return &dps.Explanation{RegistrationID: r.RegistrationID, EffectivePolicy: "hashed",
		Decisions: []dps.PolicyDecision{{Policy: "hashed", Effective: true, Hub: "a.example.com", Reason: string(r.Payload)}}}, nil
}

func TestExplainRoute(t *testing.T) {
	e := newEnv(t)
	e.must(req{method: http.MethodPost, path: "/allocation/explain", body: `{"registrationId":"dev-1"}`}, http.StatusServiceUnavailable)
	e.api.SetExplainer(fakeExplainer{})
	tests := []struct {
		name, body string
		status     int
	}{
		{"explained", `{"registrationId":"dev-1","payload":{"region":"eu"}}`, http.StatusOK},
		{"unknown device", `{"registrationId":"unknown"}`, http.StatusNotFound},
		{"bad id", `{"registrationId":"bad id"}`, http.StatusBadRequest},
		{"unknown field", `{"registrationId":"dev-1","hub":"x"}`, http.StatusBadRequest},
		{"no body", ``, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(req{method: http.MethodPost, path: "/allocation/explain", body: tc.body}, tc.status)
			if tc.status == http.StatusOK {
				var x dps.Explanation
				r.decode(t, &x)
				if x.Decisions[0].Reason != `{"region":"eu"}` {
					t.Fatalf("%+v", x)
				}
			}
		})
	}
	t.Run("needs ServiceConfig", func(t *testing.T) {
		e.must(req{method: http.MethodPost, path: "/allocation/explain", body: `{"registrationId":"dev-1"}`, token: e.token(e.reader, e.host, 3600e9)}, http.StatusForbidden)
	})
}

// TestCustomWebhookURLCheckedOnWrite: a custom enrollment whose webhook
// URL the custom policy would refuse to dial is refused when written, with
// the field named, and nothing is stored.
func TestCustomWebhookURLCheckedOnWrite(t *testing.T) {
	webhooks, err := custom.New(custom.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *testConfig) { c.CheckWebhookURL = webhooks.CheckURL })
	k := newKey(t)
	withWebhook := func(id, url string) map[string]any {
		m := symEnrollment(id, k)
		m["allocationPolicy"] = "custom"
		m["customAllocationDefinition"] = map[string]any{"webhookUrl": url, "apiVersion": "2021-10-01"}
		return m
	}
	tests := []struct {
		name, url string
		status    int
	}{
		{"cloud metadata address", "http://169.254.169.254/latest/meta-data", http.StatusBadRequest},
		{"IPv6 link-local", "http://[fe80::1]:8080/allocate", http.StatusBadRequest},
		{"metadata host name", "http://metadata.google.internal/computeMetadata/v1/", http.StatusBadRequest},
		{"loopback", "http://127.0.0.1:8080/allocate", http.StatusOK},
		{"host name", "https://alloc.example.com/allocate", http.StatusOK},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("webhook-%d", i)
			r := e.must(req{method: http.MethodPut, path: "/enrollments/" + id, body: withWebhook(id, tc.url)}, tc.status)
			if tc.status == http.StatusOK {
				return
			}
			if msg := r.errBody(t).Message; !strings.Contains(msg, "customAllocationDefinition.webhookUrl") {
				t.Errorf("message does not name the field: %q", msg)
			}
			e.must(req{method: http.MethodGet, path: "/enrollments/" + id}, http.StatusNotFound)
		})
	}
	t.Run("group", func(t *testing.T) {
		g := symGroup("webhook-grp", k)
		g["allocationPolicy"] = "custom"
		g["customAllocationDefinition"] = map[string]any{"webhookUrl": "http://169.254.169.254/", "apiVersion": "2021-10-01"}
		e.must(req{method: http.MethodPut, path: "/enrollmentGroups/webhook-grp", body: g}, http.StatusBadRequest)
	})
	t.Run("bulk", func(t *testing.T) {
		r := e.must(req{method: http.MethodPost, path: "/enrollments", body: map[string]any{"mode": "create", "enrollments": []any{
			withWebhook("bulk-1", "http://169.254.169.254/"), withWebhook("bulk-2", "http://127.0.0.1:9/"),
		}}}, http.StatusOK)
		var res enrollment.BulkOperationResult
		r.decode(t, &res)
		if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].RegistrationID != "bulk-1" {
			t.Fatalf("%+v", res)
		}
	})
}
