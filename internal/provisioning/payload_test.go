package provisioning_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

// payloadPolicy answers the first eligible hub and, when set, a payload
// of its own, as a custom allocation webhook does. It records the payload
// the device sent, which allocation must still see.
type payloadPolicy struct {
	payload json.RawMessage
	seen    json.RawMessage
}

func (p *payloadPolicy) Allocate(_ context.Context, in allocation.Input) (allocation.Decision, error) {
	p.seen = append(json.RawMessage(nil), in.Payload...)
	return allocation.Decision{Hub: in.EligibleHubs[0].Name, Payload: p.payload}, nil
}

// TestRegisterPayload: the device is answered only the payload its
// allocation policy returned (Azure answers registrationState.payload only
// from a custom allocation webhook), never its own; its own payload still
// reaches the policy.
func TestRegisterPayload(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		device  string
		webhook string
		want    string
	}{
		{"no webhook payload: nothing echoed", `{"model":"m1"}`, "", ""},
		{"webhook payload answered", `{"model":"m1"}`, `{"from":"webhook"}`, `{"from":"webhook"}`},
		{"webhook payload without a device payload", "", `{"from":"webhook"}`, `{"from":"webhook"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, memory.New(), nil)
			p := &payloadPolicy{}
			if tc.webhook != "" {
				p.payload = json.RawMessage(tc.webhook)
			}
			svc, err := provisioning.New(provisioning.Config{Store: e.st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}}, Allocator: p, Logger: slog.New(slog.DiscardHandler), Now: e.clock})
			if err != nil {
				t.Fatal(err)
			}
			e.hub(t, "a.example.net", 1, true)
			e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
			req := &port.Request{RegistrationID: "dev-1", Authorization: "individual"}
			if tc.device != "" {
				req.Payload = json.RawMessage(tc.device)
			}
			op, err := svc.Register(ctx, req)
			if err != nil || op.Status != enrollment.RegistrationAssigned {
				t.Fatalf("register: %+v %v", op, err)
			}
			if string(p.seen) != tc.device {
				t.Errorf("the policy saw payload %s, want the device's %s", p.seen, tc.device)
			}
			if got := string(op.Registration.Payload); got != tc.want {
				t.Errorf("answered payload %q, want %q", got, tc.want)
			}
			// The status lookup answers the stored record: the same rule.
			rec, err := svc.Status(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(rec.Payload); got != tc.want {
				t.Errorf("status lookup payload %q, want %q", got, tc.want)
			}
		})
	}
}
