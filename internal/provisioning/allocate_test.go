package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/custom"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/allocation/static"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// registryEnv is an env whose service runs the allocation registry with
// hashed, static, custom and a fixed "geoLatency" stand-in.
func registryEnv(t *testing.T, geo allocation.Policy) (*env, *provisioning.Service) {
	t.Helper()
	e := newEnv(t, openBolt(t), nil)
	cp, err := custom.New(custom.Config{RetryBackoff: 1})
	if err != nil {
		t.Fatal(err)
	}
	if geo == nil {
		geo = &pinned{hub: "geo.example.net"}
	}
	reg, err := allocation.NewRegistry(map[string]allocation.Policy{
		enrollment.PolicyHashed: hashed.New(), enrollment.PolicyStatic: static.New(),
		enrollment.PolicyCustom: cp, enrollment.PolicyGeoLatency: geo,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := provisioning.New(provisioning.Config{Store: e.st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}}, Allocator: reg, Logger: slog.New(slog.DiscardHandler), Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	return e, svc
}

func putHub(t *testing.T, e *env, h *enrollment.Hub) {
	t.Helper()
	if _, err := e.st.Hubs.Put(context.Background(), h, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func register(t *testing.T, svc *provisioning.Service, regID, auth string) *enrollment.Operation {
	t.Helper()
	op, err := svc.Register(context.Background(), &port.Request{RegistrationID: regID, Authorization: auth})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func TestCapacityAndHealth(t *testing.T) {
	tests := []struct {
		name    string
		hubs    []*enrollment.Hub
		wantHub string // "" means failed
	}{
		{"full hub skipped", []*enrollment.Hub{{Name: "full.example.net", Capacity: 2, AllocationWeight: 1000}, {Name: "free.example.net", AllocationWeight: 1}}, "free.example.net"},
		{"draining hub skipped", []*enrollment.Hub{{Name: "drain.example.net", Status: enrollment.HubDraining, AllocationWeight: 1000}, {Name: "ok.example.net", AllocationWeight: 1}}, "ok.example.net"},
		{"unhealthy hub skipped", []*enrollment.Hub{{Name: "sick.example.net", Status: enrollment.HubUnhealthy, AllocationWeight: 1000}, {Name: "ok.example.net", AllocationWeight: 1}}, "ok.example.net"},
		{"every hub full", []*enrollment.Hub{{Name: "full.example.net", Capacity: 2}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, svc := registryEnv(t, nil)
			for _, h := range tc.hubs {
				putHub(t, e, h)
			}
			// Two devices already on the first hub.
			for i := range 2 {
				rec := &enrollment.Registration{RegistrationID: fmt.Sprintf("old-%d", i), AssignedHub: tc.hubs[0].Name, Status: enrollment.RegistrationAssigned}
				if _, err := e.st.Registrations.Put(context.Background(), rec, store.Condition{}); err != nil {
					t.Fatal(err)
				}
			}
			e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g"})
			for i := range 5 {
				op := register(t, svc, fmt.Sprintf("new-%d", i), "group:g")
				if tc.wantHub == "" {
					if op.Status != enrollment.RegistrationFailed || op.ErrorCode != dps.CodeAllocationFailed {
						t.Fatalf("op = %+v, want failed", op)
					}
					t.Logf("message: %s", op.ErrorMessage)
					continue
				}
				if op.Status != enrollment.RegistrationAssigned || op.Registration.AssignedHub != tc.wantHub {
					t.Fatalf("op = %+v %+v, want %s", op, op.Registration, tc.wantHub)
				}
			}
		})
	}
	t.Run("a device on a full hub keeps its slot", func(t *testing.T) {
		e, svc := registryEnv(t, nil)
		putHub(t, e, &enrollment.Hub{Name: "only.example.net", Capacity: 1})
		e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g"})
		for range 3 {
			if op := register(t, svc, "dev-1", "group:g"); op.Status != enrollment.RegistrationAssigned {
				t.Fatalf("re-registration: %+v", op)
			}
		}
		if op := register(t, svc, "dev-2", "group:g"); op.Status != enrollment.RegistrationFailed {
			t.Fatalf("second device on a hub of capacity 1: %+v", op)
		}
		n, err := e.st.Registrations.CountBy(context.Background(), store.IndexRegistrationsByHub, "only.example.net")
		if err != nil || n != 1 {
			t.Fatalf("count = %d, %v", n, err)
		}
	})
	t.Run("draining moves re-registering devices off", func(t *testing.T) {
		e, svc := registryEnv(t, nil)
		putHub(t, e, &enrollment.Hub{Name: "a.example.net"})
		e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g"})
		register(t, svc, "dev-1", "group:g")
		putHub(t, e, &enrollment.Hub{Name: "a.example.net", Status: enrollment.HubDraining})
		putHub(t, e, &enrollment.Hub{Name: "b.example.net"})
		op := register(t, svc, "dev-1", "group:g")
		if op.Registration.AssignedHub != "b.example.net" || op.Registration.Substatus != enrollment.SubstatusDeviceDataMigrated {
			t.Fatalf("%+v", op.Registration)
		}
	})
}

func TestPolicyPrecedence(t *testing.T) {
	e, svc := registryEnv(t, nil)
	for _, h := range []string{"a.example.net", "b.example.net", "geo.example.net"} {
		putHub(t, e, &enrollment.Hub{Name: h})
	}
	e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "default-policy"})
	e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "static-b", Spec: enrollment.Spec{AllocationPolicy: enrollment.PolicyStatic, IoTHubs: []string{"b.example.net"}}})
	e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "unknown", Spec: enrollment.Spec{AllocationPolicy: "roundRobin"}})

	if op := register(t, svc, "s1", "group:static-b"); op.Registration.AssignedHub != "b.example.net" {
		t.Fatalf("static: %+v", op.Registration)
	}
	first := register(t, svc, "d1", "group:default-policy").Registration.AssignedHub
	if first != hashed.Choose("d1", []*enrollment.Hub{{Name: "a.example.net"}, {Name: "b.example.net"}, {Name: "geo.example.net"}}) {
		t.Fatalf("no settings: hashed expected, got %s", first)
	}
	// The instance default changes: existing records stay until the device
	// registers again; later registrations use the new default.
	if _, err := e.st.Settings.Put(context.Background(), &enrollment.Settings{DefaultAllocationPolicy: enrollment.PolicyGeoLatency}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.st.Registrations.Get(context.Background(), "d1"); rec.AssignedHub != first {
		t.Fatal("a policy change moved an existing record")
	}
	if op := register(t, svc, "d2", "group:default-policy"); op.Registration.AssignedHub != "geo.example.net" {
		t.Fatalf("new default: %+v", op.Registration)
	}
	// The enrollment's own policy wins over the default.
	if op := register(t, svc, "s2", "group:static-b"); op.Registration.AssignedHub != "b.example.net" {
		t.Fatalf("enrollment policy: %+v", op.Registration)
	}
	op := register(t, svc, "u1", "group:unknown")
	if op.Status != enrollment.RegistrationFailed {
		t.Fatalf("unknown policy: %+v", op)
	}
}

func TestCustomWebhookFailureReachesDevice(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	e, svc := registryEnv(t, nil)
	putHub(t, e, &enrollment.Hub{Name: "a.example.net"})
	e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "c", Spec: enrollment.Spec{AllocationPolicy: enrollment.PolicyCustom, CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: srv.URL}}})
	op := register(t, svc, "dev-1", "group:c")
	want := "allocation failed: " + (&custom.WebhookError{Kind: custom.KindStatus, StatusCode: 500, Attempts: 3}).Error()
	if op.Status != enrollment.RegistrationFailed || op.ErrorCode != dps.CodeAllocationFailed || op.ErrorMessage != want {
		t.Fatalf("op = %+v\nwant message %q", op, want)
	}
}

func TestExplain(t *testing.T) {
	e, svc := registryEnv(t, nil)
	ctx := context.Background()
	putHub(t, e, &enrollment.Hub{Name: "a.example.net", AllocationWeight: 3})
	putHub(t, e, &enrollment.Hub{Name: "b.example.net", Status: enrollment.HubDraining})
	putHub(t, e, &enrollment.Hub{Name: "geo.example.net"})
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1", Spec: enrollment.Spec{AllocationPolicy: enrollment.PolicyStatic, IoTHubs: []string{"a.example.net"}}})
	x, err := svc.Explain(ctx, provisioning.ExplainRequest{RegistrationID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	if x.EffectivePolicy != enrollment.PolicyStatic || x.EnrollmentKind != "individualEnrollment" || len(x.Decisions) != 4 || len(x.Hubs) != 3 {
		t.Fatalf("%+v", x)
	}
	for _, d := range x.Decisions {
		switch d.Policy {
		case enrollment.PolicyStatic:
			if !d.Effective || d.Hub != "a.example.net" || d.Reason == "" {
				t.Errorf("static: %+v", d)
			}
		case enrollment.PolicyCustom:
			if d.Error == "" || d.Hub != "" {
				t.Errorf("custom without webhook: %+v", d)
			}
		case enrollment.PolicyHashed:
			if d.Hub == "b.example.net" || d.Hub == "" {
				t.Errorf("hashed chose a draining hub: %+v", d)
			}
		}
	}
	if _, err := svc.Explain(ctx, provisioning.ExplainRequest{RegistrationID: "nobody"}); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g"})
	x, err = svc.Explain(ctx, provisioning.ExplainRequest{RegistrationID: "grp-dev", EnrollmentGroupID: "g"})
	if err != nil || x.EnrollmentKind != "enrollmentGroup" || x.EffectivePolicy != enrollment.PolicyHashed {
		t.Fatalf("%+v %v", x, err)
	}
	for _, h := range x.Hubs {
		if h.Hub == "b.example.net" && (h.Eligible || h.Reason != "draining") {
			t.Errorf("draining hub: %+v", h)
		}
	}
	if n := count(t, e.st.Backend, store.BucketRegistrations); n != 0 {
		t.Fatal("explain stored a record")
	}
}
