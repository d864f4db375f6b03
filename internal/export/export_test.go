package export_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/custom"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/export"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
)

func trail(t *testing.T, n int) (store.Backend, *audit.Log) {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "zdps.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := audit.New(audit.Config{Backend: b, Signer: &audit.KeySigner{Key: k}})
	if err != nil {
		t.Fatal(err)
	}
	add(t, b, l, n)
	return b, l
}

func add(t *testing.T, b store.Backend, l *audit.Log, n int) {
	t.Helper()
	for i := range n {
		e := audit.Event{Action: audit.ActionRegistrationAssigned, Outcome: audit.OutcomeSuccess, Actor: "device", RegistrationID: fmt.Sprintf("dev-%d", i)}
		if err := b.Update(t.Context(), func(tx store.Tx) error { return l.Record(t.Context(), tx, e) }); err != nil {
			t.Fatal(err)
		}
	}
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

// receiver counts events by ID, as a SIEM deduplicating would.
type receiver struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
}

func (r *receiver) take(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	r.seen[id]++
	r.total++
}

func (r *receiver) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// flaky fails while down is set, and can "crash" the exporter after a
// delivery, before the cursor moves.
type flaky struct {
	rcv   *receiver
	down  atomic.Bool
	crash func()
}

func (f *flaky) Deliver(_ context.Context, evs []audit.Sealed) error {
	if f.down.Load() {
		return errors.New("receiver down")
	}
	for _, e := range evs {
		f.rcv.take(e.ID)
	}
	if f.crash != nil {
		c := f.crash
		f.crash = nil
		c()
		return context.Canceled
	}
	return nil
}

func (f *flaky) Close() error { return nil }

func TestAtLeastOnceAcrossCrashAndOutage(t *testing.T) {
	b, l := trail(t, 1200)
	rcv := &receiver{}
	sink := &flaky{rcv: rcv}
	newExp := func() *export.Exporter {
		e, err := export.New(export.Config{Backend: b, Source: l, Sink: sink, Name: "siem", Owner: "r1", Batch: 500, Interval: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// The first run delivers one batch and dies before storing the cursor.
	sink.crash = func() {}
	if _, err := newExp().Once(t.Context()); err == nil {
		t.Fatal("the crashed delivery reported success")
	}
	// The receiver is down for a while; more events arrive meanwhile.
	sink.down.Store(true)
	exp := newExp()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { exp.Run(ctx); close(done) }()
	add(t, b, l, 300)
	time.Sleep(20 * time.Millisecond) // some failed rounds, with backoff
	sink.down.Store(false)
	deadline := time.Now().Add(20 * time.Second)
	// Delivered, and the cursor stored after it.
	for time.Now().Before(deadline) {
		if c, _ := exp.Cursor(t.Context()); c == 1500 && rcv.unique() == 1500 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := rcv.unique(); got != 1500 {
		t.Fatalf("receiver has %d distinct events, want 1500", got)
	}
	if rcv.total < 1500+500 {
		t.Fatalf("the crashed batch was not delivered again (%d deliveries)", rcv.total)
	}
	if c, _ := exp.Cursor(t.Context()); c != 1500 {
		t.Fatalf("cursor %d, want 1500", c)
	}
}

func TestLeaseKeepsOneExporterPerSink(t *testing.T) {
	b, l := trail(t, 10)
	rcv := &receiver{}
	e1, _ := export.New(export.Config{Backend: b, Source: l, Sink: &flaky{rcv: rcv}, Name: "siem", Owner: "r1"})
	e2, _ := export.New(export.Config{Backend: b, Source: l, Sink: &flaky{rcv: rcv}, Name: "siem", Owner: "r2"})
	if n, err := e1.Once(t.Context()); n != 10 || err != nil {
		t.Fatalf("r1: %d, %v", n, err)
	}
	add(t, b, l, 5)
	if n, err := e2.Once(t.Context()); n != 0 || err != nil {
		t.Fatalf("r2 exported %d while r1 holds the lease (%v)", n, err)
	}
	if n, _ := e1.Once(t.Context()); n != 5 || rcv.total != 15 {
		t.Fatalf("r1 second round %d, total %d", n, rcv.total)
	}
}

func TestFileSink(t *testing.T) {
	b, l := trail(t, 3)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	fs, err := export.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := export.New(export.Config{Backend: b, Source: l, Sink: fs, Name: "file"})
	if n, err := e.Once(t.Context()); n != 3 || err != nil {
		t.Fatalf("%d, %v", n, err)
	}
	fs.Close()
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, ln := range lines {
		var v struct {
			Seq    uint64 `json:"seq"`
			ID     string `json:"id"`
			Action string `json:"action"`
		}
		if err := json.Unmarshal([]byte(ln), &v); err != nil || v.Seq != uint64(i+1) || v.ID == "" || v.Action != audit.ActionRegistrationAssigned {
			t.Fatalf("line %d %q: %+v %v", i, ln, v, err)
		}
	}
}

func TestWebhookSinkSignsAndRetries(t *testing.T) {
	b, l := trail(t, 7)
	secret := []byte("s3cret")
	rcv := &receiver{}
	var fails atomic.Int32
	fails.Store(2)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := custom.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if fails.Add(-1) >= 0 {
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
		for _, e := range evs {
			rcv.take(e.ID)
		}
	}))
	defer srv.Close()
	sink := &export.WebhookSink{URL: srv.URL, Secret: secret, Client: srv.Client()}
	e, _ := export.New(export.Config{Backend: b, Source: l, Sink: sink, Name: "hook"})
	for i := 0; i < 2; i++ {
		if _, err := e.Once(t.Context()); err == nil {
			t.Fatalf("attempt %d succeeded against a failing receiver", i)
		}
	}
	if n, err := e.Once(t.Context()); n != 7 || err != nil || rcv.unique() != 7 {
		t.Fatalf("%d, %v, %d received", n, err, rcv.unique())
	}
}

func TestSyslogSinkFramesRFC5424(t *testing.T) {
	b, l := trail(t, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := make(chan string, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			lenStr, err := r.ReadString(' ')
			if err != nil {
				return
			}
			n, err := strconv.Atoi(strings.TrimSpace(lenStr))
			if err != nil {
				msgs <- "bad frame: " + lenStr
				return
			}
			m := make([]byte, n)
			if _, err := io.ReadFull(r, m); err != nil {
				return
			}
			msgs <- string(m)
		}
	}()
	sink := &export.SyslogSink{Addr: ln.Addr().String(), Hostname: "zdps-1"}
	defer sink.Close()
	e, _ := export.New(export.Config{Backend: b, Source: l, Sink: sink, Name: "syslog"})
	if n, err := e.Once(t.Context()); n != 4 || err != nil {
		t.Fatalf("%d, %v", n, err)
	}
	for i := range 4 {
		select {
		case m := <-msgs:
			if !strings.HasPrefix(m, "<133>1 ") || !strings.Contains(m, " zdps-1 zdps - registration.assigned [zdps@32473 id=\"") ||
				!strings.Contains(m, fmt.Sprintf(`seq="%d"] {"seq":%d,`, i+1, i+1)) {
				t.Fatalf("message %d: %q", i, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
		}
	}
}
