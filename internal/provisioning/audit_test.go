package provisioning_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/decision"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// observer records what the pipeline counts.
type observer struct {
	mu   sync.Mutex
	regs []string
	cert []string
}

func (o *observer) Registration(att, transport, outcome, class string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.regs = append(o.regs, fmt.Sprintf("%s/%s/%s/%s", att, transport, outcome, class))
}
func (o *observer) Certificate(ev string, n int) {
	o.mu.Lock()
	o.cert = append(o.cert, ev)
	o.mu.Unlock()
}
func (o *observer) Throttled(string)          {}
func (o *observer) Allocation(string, string) {}

// Every decision of the pipeline is in the trail: an assignment in the
// registration's own transaction (the event exists exactly when the
// record does), a refusal through the buffer; metrics count both.
func TestDecisionsAreAudited(t *testing.T) {
	b := openBolt(t)
	e := &env{now: time.Now().UTC()}
	e.st = store.New(b, e.clock)
	e.ca = newCA(t)
	iss, _ := caissuer.New(e.ca)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := audit.New(audit.Config{Backend: b, Signer: &audit.KeySigner{Key: k}})
	if err != nil {
		t.Fatal(err)
	}
	trail := &audit.Trail{Log: l, Buffer: l.NewBuffer(0)}
	obs := &observer{}
	e.svc, err = provisioning.New(provisioning.Config{
		Store: e.st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}},
		Allocator: hashed.New(), Issuer: iss, Logger: slog.New(slog.DiscardHandler), Now: e.clock, Audit: trail, Observer: obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.hub(t, "hub-a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})

	ctx := context.Background()
	op, err := e.svc.Register(ctx, &port.Request{IDScope: "scope", RegistrationID: "dev-1", Authorization: "individual", RemoteAddr: "198.51.100.7:4000", Transport: "https", CSR: csrFor(t, "dev-1", elliptic.P256())})
	if err != nil || op.Status != enrollment.RegistrationAssigned {
		t.Fatalf("register: %v, %v", op, err)
	}
	wrong := &port.Request{IDScope: "scope", RegistrationID: "dev-1", Authorization: "wrong", RemoteAddr: "203.0.113.9:1", Transport: "mqtt"}
	if _, err := e.svc.Register(ctx, wrong); err == nil {
		t.Fatal("a wrong credential registered")
	}
	if err := trail.Buffer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := l.Seal(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	evs, _, err := l.List(ctx, audit.Filter{RegistrationID: "dev-1"}, 0, 0, 0)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events %+v, %v", evs, err)
	}
	rec, _ := e.st.Registrations.Get(ctx, "dev-1")
	got := evs[0]
	if got.Action != audit.ActionRegistrationAssigned || got.Outcome != audit.OutcomeSuccess || got.ETagAfter != rec.ETag || got.ETagBefore != "" ||
		got.Details["hub"] != "hub-a.example.net" || got.Details["serial"] == "" || got.Source != "198.51.100.7:4000" || got.Transport != "https" {
		t.Fatalf("assigned event %+v", got)
	}
	ref := evs[1]
	if ref.Action != audit.ActionRegistrationRefused || ref.Reason != decision.ClassUnauthorized || ref.Transport != "mqtt" {
		t.Fatalf("refusal event %+v", ref)
	}
	if fmt.Sprint(obs.regs) != "[symmetricKey/https/assigned/ "+provisioning.Mechanism(wrong)+"/mqtt/refused/unauthorized]" || fmt.Sprint(obs.cert) != "[issued]" {
		t.Fatalf("observed %v %v", obs.regs, obs.cert)
	}
}
