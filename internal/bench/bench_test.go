package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1..100 ms
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{ms(7)}, 99, ms(7)},
		{"p50 of 100", hundred, 50, ms(50)},
		{"p90 of 100", hundred, 90, ms(90)},
		{"p99 of 100", hundred, 99, ms(99)},
		{"p100 is the max", hundred, 100, ms(100)},
		{"p0 is the min", hundred, 0, ms(1)},
		// Nearest rank: ⌈0.5·3⌉ = 2nd, ⌈0.99·3⌉ = 3rd.
		{"p50 of 3", []time.Duration{ms(1), ms(2), ms(3)}, 50, ms(2)},
		{"p99 of 3", []time.Duration{ms(1), ms(2), ms(3)}, 99, ms(3)},
		{"p50 of 4", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{"p90 of 10", []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(8), ms(9), ms(10)}, 90, ms(9)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	in := []time.Duration{ms(30), ms(10), ms(20), ms(40)}
	orig := slices.Clone(in)
	got := Summarize(in)
	want := Latency{Min: 10, Mean: 25, P50: 20, P90: 40, P99: 40, Max: 40}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if !slices.Equal(in, orig) {
		t.Error("Summarize reordered its input")
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("Summarize(nil) is not zero")
	}
}

// TestReportJSON pins the field names of the JSON report that scripts
// read (zdps bench -o json).
func TestReportJSON(t *testing.T) {
	r := &Report{
		Attestation: X509, Devices: 10, Concurrency: 2, CSR: true, CSRPregenerated: true, KeyExchange: KeyExchangeX25519,
		Succeeded: 9, Failed: 1, ElapsedSeconds: 0.5, RegistrationsPerSecond: 18,
		LatencyMs:     Latency{Min: 1, Mean: 2, P50: 2, P90: 3, P99: 4, Max: 5},
		Errors:        map[string]int{"http-401-401002": 1},
		ErrorSamples:  map[string]string{"http-401-401002": "unauthorized"},
		TLSHandshakes: Handshakes{Full: 10},
		CPU:           CPU{ClientSeconds: 0.1, ClientMsPerRegistration: 11.1, ServerPID: 42, ServerSeconds: 0.2, ServerMsPerRegistration: 22.2, MachineCPUs: 2},
		LoadAverage:   [2]float64{0.5, 0.7},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"attestation", "cleanupSeconds", "concurrency", "cpu", "csr", "csrPregenerated", "devices", "elapsedSeconds",
		"errorSamples", "errors", "failed", "keepAlive", "keyExchange", "latencyMs", "loadAverage", "prepareSeconds",
		"registrationsPerSecond", "setupSeconds", "succeeded", "tlsHandshakes", "tlsResumption", "transport"}
	// cleanupSeconds and setupSeconds are omitted when zero.
	want = slices.DeleteFunc(want, func(k string) bool { return k == "cleanupSeconds" || k == "setupSeconds" })
	if !slices.Equal(keys, want) {
		t.Errorf("top-level keys\n got %v\nwant %v", keys, want)
	}
	lat := m["latencyMs"].(map[string]any)
	for _, k := range []string{"min", "mean", "p50", "p90", "p99", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latencyMs has no %q", k)
		}
	}
	cpu := m["cpu"].(map[string]any)
	for _, k := range []string{"clientMsPerRegistration", "serverMsPerRegistration", "serverPid", "machineCpus"} {
		if _, ok := cpu[k]; !ok {
			t.Errorf("cpu has no %q", k)
		}
	}
	if m["errors"].(map[string]any)["http-401-401002"] != 1.0 {
		t.Errorf("errors = %v", m["errors"])
	}
	// A run without failures still has an errors object, never null.
	b, _ = json.Marshal(&Report{Errors: map[string]int{}})
	if err := json.Unmarshal(b, &m); err != nil || m["errors"] == nil {
		t.Errorf("empty errors encode as %v", m["errors"])
	}
}

// fakeClock is a manual clock whose sleep advances time.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}
func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestLimiter(t *testing.T) {
	ctx := context.Background()
	t.Run("paces at the rate", func(t *testing.T) {
		clk := &fakeClock{t: time.Unix(1000, 0)}
		l := NewLimiter(100, clk.now, clk.sleep) // one every 10ms
		start := clk.now()
		for range 101 {
			if err := l.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := clk.now().Sub(start); got != time.Second {
			t.Errorf("101 starts at 100/s took %v, want 1s", got)
		}
		if clk.sleeps[0] != 10*time.Millisecond || len(clk.sleeps) != 100 {
			t.Errorf("sleeps %v..., %d of them", clk.sleeps[:1], len(clk.sleeps))
		}
	})
	t.Run("a late caller does not wait and keeps its slot", func(t *testing.T) {
		clk := &fakeClock{t: time.Unix(1000, 0)}
		l := NewLimiter(10, clk.now, clk.sleep) // one every 100ms
		_ = l.Wait(ctx)                         // slot 0
		clk.advance(250 * time.Millisecond)     // slots 1 and 2 are past
		_ = l.Wait(ctx)
		_ = l.Wait(ctx)
		if len(clk.sleeps) != 0 {
			t.Errorf("late callers slept %v", clk.sleeps)
		}
		_ = l.Wait(ctx) // slot 3 at 300ms: 50ms from now
		if len(clk.sleeps) != 1 || clk.sleeps[0] != 50*time.Millisecond {
			t.Errorf("sleeps %v, want [50ms]", clk.sleeps)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		l := NewLimiter(0.001, nil, nil)
		_ = l.Wait(ctx)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := l.Wait(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait after cancel = %v", err)
		}
	})
	t.Run("real clock", func(t *testing.T) {
		l := NewLimiter(200, nil, nil)
		start := time.Now()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 5 {
					_ = l.Wait(ctx)
				}
			})
		}
		wg.Wait()
		// 20 starts at 200/s: the last at 95ms.
		if d := time.Since(start); d < 90*time.Millisecond {
			t.Errorf("20 starts at 200/s took %v", d)
		}
	})
}

func TestErrorKind(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&device.Error{StatusCode: 401, ErrorCode: 401002}, "http-401-401002"},
		{&device.Error{StatusCode: 200, Status: "failed", ErrorCode: 400209}, "status-failed-400209"},
		{fmt.Errorf("x: %w", device.ErrGaveUp), "gave-up"},
		{context.Canceled, "canceled"},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("%w: bad", device.ErrMalformedResponse), "malformed-response"},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, "connect"},
		{errors.New("remote error: tls: bad certificate"), "tls"},
		{errors.New("something"), "other"},
	}
	for _, tc := range cases {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func() Config {
		return Config{Endpoint: "127.0.0.1:1", IDScope: "0ne00000001", Client: nil, Attestation: SymmetricIndividual, Devices: 1, Concurrency: 1}
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"unknown attestation", func(c *Config) { c.Attestation = "psk" }, ErrInvalidConfig},
		{"no client", func(c *Config) {}, ErrInvalidConfig},
		{"zero devices", func(c *Config) { c.Devices = 0 }, ErrInvalidConfig},
		{"bad key exchange", func(c *Config) { c.KeyExchange = "rsa" }, ErrInvalidConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.mod(&c)
			if _, err := Run(context.Background(), c); !errors.Is(err, tc.want) {
				t.Errorf("Run = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConfigValidateTransport(t *testing.T) {
	cases := []struct {
		name      string
		mod       func(*Config)
		wantErr   string
		wantMQTTE string
	}{
		{"https by default", func(c *Config) {}, "", ""},
		{"mqtt endpoint defaults to port 8883", func(c *Config) { c.Transport = device.TransportMQTT }, "", "127.0.0.1:8883"},
		{"mqtt endpoint given", func(c *Config) { c.Transport, c.MQTTEndpoint = device.TransportMQTT, "127.0.0.1:9" }, "", "127.0.0.1:9"},
		{"unknown transport", func(c *Config) { c.Transport = "amqp" }, `transport "amqp"`, ""},
		{"TPM over MQTT", func(c *Config) { c.Transport, c.Attestation = device.TransportMQTT, TPM }, "HTTPS only", ""},
		{"keep-alive over MQTT-WS", func(c *Config) { c.Transport, c.KeepAlive = device.TransportMQTTWS, true }, "keep-alive", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Endpoint: "127.0.0.1:1", IDScope: "0ne00000001", Client: &client.Client{}, Attestation: SymmetricIndividual, Devices: 1, Concurrency: 1}
			tc.mod(&c)
			err := c.validate()
			if tc.wantErr == "" {
				if err != nil || c.MQTTEndpoint != tc.wantMQTTE || c.Transport == "" {
					t.Fatalf("validate = %v, transport %q, MQTT endpoint %q (want %q)", err, c.Transport, c.MQTTEndpoint, tc.wantMQTTE)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("validate = %v, want ErrInvalidConfig naming %q", err, tc.wantErr)
			}
		})
	}
}
