package detect_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/export"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
)

type responder struct {
	mu        sync.Mutex
	throttled []string
	disabled  []string
}

func (r *responder) ThrottleSource(_ context.Context, network string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.throttled = append(r.throttled, network)
	return nil
}

func (r *responder) DisableEnrollment(_ context.Context, id, group string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disabled = append(r.disabled, id+"|"+group)
	return nil
}

// The detector as a consumer of the sealed trail: a brute-force run
// recorded by the pipeline raises one stored alert, an alert event in the
// trail, and the configured response; acknowledging it is audited too.
func TestWatchOverTheTrail(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "zdps.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, _ := audit.New(audit.Config{Backend: b, Signer: &audit.KeySigner{Key: k}})
	for i := range 15 {
		e := refused("victim", fmt.Sprintf("192.0.2.%d:5000", i), detect.ReasonUnauthorized, time.Duration(i)*time.Second)
		e.ID = ""
		if err := b.Update(t.Context(), func(tx store.Tx) error { return l.Record(t.Context(), tx, e) }); err != nil {
			t.Fatal(err)
		}
	}
	seal := func() {
		for {
			n, err := l.Seal(t.Context(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	seal()
	resp := &responder{}
	w, err := detect.NewWatch(detect.WatchConfig{Backend: b, Recorder: l, Detector: detect.New(detect.Config{}),
		Responses: map[string]string{detect.RuleBruteForce: detect.ResponseThrottle}, Responder: resp})
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := export.New(export.Config{Backend: b, Source: l, Sink: w, Name: "detect"})
	if _, err := exp.Once(t.Context()); err != nil {
		t.Fatal(err)
	}
	alerts := &detect.Alerts{Backend: b, Recorder: l}
	open, err := alerts.List(t.Context(), detect.StatusOpen, "", 0)
	if err != nil || len(open) != 1 || open[0].Rule != detect.RuleBruteForce || open[0].Response != detect.ResponseThrottle {
		t.Fatalf("open alerts: %+v, %v", open, err)
	}
	if len(resp.throttled) != 1 || resp.throttled[0] != "192.0.2.0/24" {
		t.Fatalf("throttled %v", resp.throttled)
	}
	seal()
	evs, _, _ := l.List(t.Context(), audit.Filter{Action: audit.ActionAlert}, 0, 0, 0)
	if len(evs) != 1 || evs[0].Details["alertId"] != open[0].ID {
		t.Fatalf("alert events %+v", evs)
	}
	// The alert event comes back through the trail; nothing fires twice.
	if _, err := exp.Once(t.Context()); err != nil {
		t.Fatal(err)
	}
	if all, _ := alerts.List(t.Context(), "", "", 0); len(all) != 1 {
		t.Fatalf("%d alerts after the second round", len(all))
	}
	if _, err := alerts.Ack(t.Context(), open[0].ID, "secops", "wrong-etag"); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("ack with a stale ETag: %v", err)
	}
	acked, err := alerts.Ack(t.Context(), open[0].ID, "secops", open[0].ETag)
	if err != nil || acked.Status != detect.StatusAcknowledged || acked.AcknowledgedBy != "secops" {
		t.Fatalf("ack: %+v, %v", acked, err)
	}
	if _, err := alerts.Get(t.Context(), "nope"); !errors.Is(err, detect.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	seal()
	if evs, _, _ := l.List(t.Context(), audit.Filter{Action: "alert.acknowledge"}, 0, 0, 0); len(evs) != 1 || evs[0].Actor != "secops" {
		t.Fatalf("ack events %+v", evs)
	}
	if _, err := l.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
}
