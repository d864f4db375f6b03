package ratelog

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lines collects JSON log lines from concurrent writers.
type lines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) all(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if s == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		out = append(out, m)
	}
	return out
}

func newTest(n int, interval time.Duration, level slog.Level) (*Logger, *lines) {
	out := &lines{}
	return New(slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level})), n, interval), out
}

// fakeClock is a manual clock; the loggers using it have an interval of
// an hour, so the real-time summary timer never fires during a test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLimitPerKeyAndSummary(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		limit int
		// sent per key in the first interval
		send         map[string]int
		wantWritten  map[string]int
		wantSummary  map[string]float64 // suppressed count in the summary; absent: none
		summaryLevel string
	}{
		{"under the limit", 3, map[string]int{"a": 2}, map[string]int{"a": 2}, nil, ""},
		{"at the limit", 3, map[string]int{"a": 3}, map[string]int{"a": 3}, nil, ""},
		{"over the limit", 3, map[string]int{"a": 10}, map[string]int{"a": 3}, map[string]float64{"a": 7}, "INFO"},
		{"keys are independent", 2, map[string]int{"a": 5, "b": 1, "c": 2}, map[string]int{"a": 2, "b": 1, "c": 2}, map[string]float64{"a": 3}, "INFO"},
		{"limit below one is one", 0, map[string]int{"a": 4}, map[string]int{"a": 1}, map[string]float64{"a": 3}, "INFO"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, out := newTest(tc.limit, time.Hour, slog.LevelDebug)
			clk := &fakeClock{t: time.Unix(1_000_000, 0)}
			l.now = clk.now
			for k, n := range tc.send {
				for range n {
					l.Log(ctx, slog.LevelInfo, k, "event", "kind", k)
				}
			}
			got := map[string]int{}
			for _, m := range out.all(t) {
				if m["msg"] != "event" {
					t.Fatalf("unexpected line before the interval ended: %v", m)
				}
				got[m["kind"].(string)]++
			}
			for k, want := range tc.wantWritten {
				if got[k] != want {
					t.Errorf("key %s: %d lines written, want %d", k, got[k], want)
				}
			}
			// The interval ends; the next line of each key summarises the
			// last interval first, then is written itself.
			clk.t = clk.t.Add(time.Hour)
			before := len(out.all(t))
			for k := range tc.send {
				l.Log(ctx, slog.LevelInfo, k, "event", "kind", k)
			}
			summaries := map[string]float64{}
			after := out.all(t)[before:]
			for _, m := range after {
				if m["msg"] == "event" {
					continue
				}
				k := m["key"].(string)
				summaries[k] = m["suppressed"].(float64)
				if want := "suppressed " + jsonNum(m["suppressed"]) + " lines"; m["msg"] != want {
					t.Errorf("summary message %q, want %q", m["msg"], want)
				}
				if m["level"] != tc.summaryLevel {
					t.Errorf("summary level %v, want %s", m["level"], tc.summaryLevel)
				}
			}
			if len(summaries) != len(tc.wantSummary) {
				t.Fatalf("summaries %v, want %v", summaries, tc.wantSummary)
			}
			for k, want := range tc.wantSummary {
				if summaries[k] != want {
					t.Errorf("key %s: summary says %v suppressed, want %v", k, summaries[k], want)
				}
			}
			if n := len(after) - len(summaries); n != len(tc.send) {
				t.Errorf("%d lines written in the new interval, want %d", n, len(tc.send))
			}
		})
	}
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSummaryLevelIsTheHighestSuppressed: a summary is as loud as the
// loudest line it stands for.
func TestSummaryLevelIsTheHighestSuppressed(t *testing.T) {
	l, out := newTest(1, time.Hour, slog.LevelDebug)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l.now = clk.now
	ctx := context.Background()
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelDebug, slog.LevelWarn, slog.LevelInfo} {
		l.Log(ctx, lv, "k", "event")
	}
	clk.t = clk.t.Add(time.Hour)
	l.Log(ctx, slog.LevelDebug, "k", "event")
	all := out.all(t)
	if len(all) != 3 || all[1]["msg"] != "suppressed 3 lines" || all[1]["level"] != "WARN" {
		t.Fatalf("lines %v, want event, a WARN summary of 3, event", all)
	}
}

// TestDisabledLevelNotCounted: lines the handler drops anyway neither use
// the budget nor appear in a summary.
func TestDisabledLevelNotCounted(t *testing.T) {
	l, out := newTest(2, time.Hour, slog.LevelInfo)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l.now = clk.now
	ctx := context.Background()
	for range 10 {
		l.Log(ctx, slog.LevelDebug, "k", "debug")
	}
	l.Log(ctx, slog.LevelInfo, "k", "info")
	l.Log(ctx, slog.LevelInfo, "k", "info")
	clk.t = clk.t.Add(time.Hour)
	l.Log(ctx, slog.LevelInfo, "k", "info")
	all := out.all(t)
	if len(all) != 3 {
		t.Fatalf("lines %v, want 3 info lines and no summary", all)
	}
	for _, m := range all {
		if m["msg"] != "info" {
			t.Fatalf("line %v", m)
		}
	}
}

// TestSummaryWhenTheKeyFallsSilent: a storm that stops is still
// reported, by the interval's timer.
func TestSummaryWhenTheKeyFallsSilent(t *testing.T) {
	l, out := newTest(2, 20*time.Millisecond, slog.LevelDebug)
	ctx, cancel := context.WithCancel(context.Background())
	for range 7 {
		l.Log(ctx, slog.LevelInfo, "k", "event")
	}
	cancel() // the request that logged is over; the summary still comes
	deadline := time.Now().Add(5 * time.Second)
	for {
		all := out.all(t)
		if n := len(all); n > 0 && all[n-1]["msg"] != "event" {
			last := all[n-1]
			written := n - 1
			if last["msg"] != "suppressed "+jsonNum(last["suppressed"])+" lines" || int(last["suppressed"].(float64))+written != 7 || written < 2 {
				t.Fatalf("lines %v: want the events then one summary of the rest", all)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary within 5s: %v", all)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Exactly one summary: the window is gone, nothing fires again.
	time.Sleep(50 * time.Millisecond)
	l.mu.Lock()
	n := len(l.keys)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d windows left after the summary", n)
	}
}

// TestConcurrent: under -race, many goroutines on a few keys write at
// most the limit per key within one interval, and the summaries account
// for every other line.
func TestConcurrent(t *testing.T) {
	l, out := newTest(5, time.Hour, slog.LevelDebug)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l.now = clk.now
	ctx := context.Background()
	var wg sync.WaitGroup
	keys := []string{"a", "b", "c"}
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				l.Log(ctx, slog.LevelInfo, keys[(g+i)%len(keys)], "event")
			}
		})
	}
	wg.Wait()
	if n := len(out.all(t)); n != 5*len(keys) {
		t.Fatalf("%d lines written, want %d", n, 5*len(keys))
	}
	clk.t = clk.t.Add(time.Hour)
	total := 0.0
	for _, k := range keys {
		l.Log(ctx, slog.LevelInfo, k, "event")
	}
	for _, m := range out.all(t) {
		if s, ok := m["suppressed"].(float64); ok {
			total += s
		}
	}
	if total != 800-5*float64(len(keys)) {
		t.Fatalf("summaries account for %v lines, want %d", total, 800-5*len(keys))
	}
}
