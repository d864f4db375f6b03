package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/instance"
	"github.com/zdps/zdps/internal/opsapi"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/dps"
)

// secopsServer is the real service API with the real security operations
// routes (internal/opsapi over an audit.Log and detect.Alerts) on an
// in-memory store, as zdps serve wires them.
type secopsServer struct {
	log    *audit.Log
	watch  *detect.Watch
	b      store.Backend
	client *client.Client
}

func newSecopsServer(t *testing.T) *secopsServer {
	t.Helper()
	ctx := t.Context()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	b := memory.New()
	st := store.New(b, nil)
	inst, err := instance.Bootstrap(ctx, st, instance.Config{HostName: host, IDScope: "0ne00000001"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Store: st, HostName: host, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(audit.Config{Backend: b, Signer: audit.NewHMACSigner([]byte("0123456789abcdef0123456789abcdef"))})
	if err != nil {
		t.Fatal(err)
	}
	watch, err := detect.NewWatch(detect.WatchConfig{Backend: b, Recorder: l, Detector: detect.New(detect.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := opsapi.New(opsapi.Config{Host: a, Trail: l, Alerts: &detect.Alerts{Backend: b, Recorder: l},
		Posture: func(ctx context.Context, th posture.Thresholds) (*posture.Report, error) {
			return posture.Compute(ctx, posture.NewStoreSource(st), posture.Options{Thresholds: th})
		}})
	if err != nil {
		t.Fatal(err)
	}
	a.Mount(ops.Routes)
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{ConnectionString: inst.ConnectionString, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return &secopsServer{log: l, watch: watch, b: b, client: c}
}

// record records events and seals them, as the server's sealer would.
func (s *secopsServer) record(t *testing.T, evs ...audit.Event) {
	t.Helper()
	ctx := t.Context()
	if err := s.b.Update(ctx, func(tx store.Tx) error {
		for _, e := range evs {
			if err := s.log.Record(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := s.log.Seal(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func refused(id string, at time.Time) audit.Event {
	return audit.Event{Time: at, Action: audit.ActionRegistrationRefused, Outcome: audit.OutcomeRefused, Reason: detect.ReasonUnauthorized,
		Actor: "device", RegistrationID: id, Source: "192.0.2.7:4000", Transport: "https"}
}

func TestAuditEvents(t *testing.T) {
	s := newSecopsServer(t)
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i := range 25 {
		evs = append(evs, refused(fmt.Sprintf("dev-%d", i%5), t0.Add(time.Duration(i)*time.Minute)))
	}
	evs = append(evs, audit.Event{Time: t0.Add(time.Hour), Action: "hub.create", Outcome: audit.OutcomeSuccess, Actor: "policy:owner", Resource: "hub/h1", ETagAfter: "e1"})
	s.record(t, evs...)

	count := func(q client.AuditQuery) (int, error) {
		n := 0
		for _, err := range s.client.AllAuditEvents(ctx, q) {
			if err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	tests := []struct {
		name string
		q    client.AuditQuery
		want int
	}{
		{"all, in pages of 4", client.AuditQuery{Limit: 4}, 26},
		{"action prefix", client.AuditQuery{Action: "registration.", Limit: 7}, 25},
		{"exact action", client.AuditQuery{Action: "hub.create"}, 1},
		{"registration ID, in pages of 2", client.AuditQuery{RegistrationID: "dev-3", Limit: 2}, 5},
		{"outcome", client.AuditQuery{Outcome: "success"}, 1},
		{"since (inclusive) and until (exclusive)", client.AuditQuery{Since: t0.Add(10 * time.Minute), Until: t0.Add(14 * time.Minute)}, 4},
		{"after", client.AuditQuery{After: 20}, 6},
		{"nothing matches", client.AuditQuery{RegistrationID: "nobody"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := count(tt.q)
			if err != nil || n != tt.want {
				t.Fatalf("got %d events, %v; want %d", n, err, tt.want)
			}
		})
	}

	p, err := s.client.AuditEvents(ctx, client.AuditQuery{Action: "hub.create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || p.Events[0].Seq != 26 || p.Events[0].ETagAfter != "e1" || p.Events[0].Actor != "policy:owner" || p.Next != 26 {
		t.Fatalf("page = %+v", p)
	}
	// An ID with characters a query string must escape reaches the
	// server intact.
	s.record(t, refused("a&b=c d", t0.Add(2*time.Hour)))
	if n, err := count(client.AuditQuery{RegistrationID: "a&b=c d"}); err != nil || n != 1 {
		t.Fatalf("escaped registration ID: %d events, %v", n, err)
	}
	if _, err := s.client.AuditEvents(ctx, client.AuditQuery{Limit: 5000}); err == nil {
		t.Fatal("a limit past the server's cap was accepted")
	}

	rep, err := s.client.VerifyAudit(ctx)
	if err != nil || rep.Problem != nil || rep.To != 27 {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

func TestAlerts(t *testing.T) {
	s := newSecopsServer(t)
	ctx := t.Context()
	t0 := time.Now().UTC().Add(-time.Minute)
	// Ten refusals for each of three IDs raise three brute-force alerts.
	var sealed []audit.Sealed
	for id := range 3 {
		for i := range 10 {
			e := refused(fmt.Sprintf("dev-%d", id), t0.Add(time.Duration(i)*time.Second))
			e.ID = audit.NewID(e.Time)
			sealed = append(sealed, audit.Sealed{Seq: uint64(len(sealed) + 1), AuditEvent: e})
		}
	}
	if err := s.watch.Deliver(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	var all []*dps.Alert
	for a, err := range s.client.AllAlerts(ctx, client.AlertQuery{Status: "open", Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}
	if len(all) != 3 || all[0].Rule != detect.RuleBruteForce {
		t.Fatalf("alerts = %+v", all)
	}
	got, err := s.client.Alert(ctx, all[1].ID)
	if err != nil || got.ID != all[1].ID || got.ETag == "" {
		t.Fatalf("alert = %+v, %v", got, err)
	}

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"show unknown", func() error { _, err := s.client.Alert(ctx, "nope"); return err }, client.ErrNotFound},
		{"ack unknown", func() error { _, err := s.client.AckAlert(ctx, "nope", ""); return err }, client.ErrNotFound},
		{"ack stale etag", func() error { _, err := s.client.AckAlert(ctx, got.ID, "stale"); return err }, client.ErrPreconditionFailed},
		{"ack current etag", func() error { _, err := s.client.AckAlert(ctx, got.ID, got.ETag); return err }, nil},
		{"ack again with the old etag", func() error { _, err := s.client.AckAlert(ctx, got.ID, got.ETag); return err }, client.ErrPreconditionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}

	_, err = s.client.Alerts(ctx, client.AlertQuery{Status: "closed"})
	if e, ok := errors.AsType[*client.APIError](err); !ok || e.StatusCode != 400 {
		t.Fatalf("status closed: err = %v, want a 400", err)
	}
	open, err := s.client.Alerts(ctx, client.AlertQuery{Status: "open"})
	if err != nil || len(open) != 2 {
		t.Fatalf("open alerts after one ack = %d, %v", len(open), err)
	}
	acked, err := s.client.Alerts(ctx, client.AlertQuery{Status: "acknowledged"})
	if err != nil || len(acked) != 1 || acked[0].AcknowledgedBy != "policy:provisioningserviceowner" {
		t.Fatalf("acknowledged = %+v, %v", acked, err)
	}
}

func TestPosture(t *testing.T) {
	s := newSecopsServer(t)
	rep, err := s.client.Posture(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Score < 0 || rep.Score > 100 || rep.Time.IsZero() {
		t.Fatalf("report = %+v", rep)
	}
	for _, f := range rep.Findings {
		if f.ID == "" || f.Severity == "" || f.Remedy == "" {
			t.Fatalf("finding = %+v", f)
		}
	}
}
