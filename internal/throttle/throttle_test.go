package throttle

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		str  string
		bad  bool
	}{
		{in: "5/10s", want: Rate{5, 10 * time.Second}, str: "5/10s"},
		{in: "10/1m", want: Rate{10, time.Minute}, str: "10/1m"},
		{in: "10/m", want: Rate{10, time.Minute}, str: "10/1m"},
		{in: " 100 / 1h ", want: Rate{100, time.Hour}, str: "100/1h"},
		{in: "3/1500ms", want: Rate{3, 1500 * time.Millisecond}, str: "3/1.5s"},
		{in: "off", str: "off"},
		{in: "OFF", str: "off"},
		{in: "0", str: "off"},
		{in: "", str: "off"},
		{in: "5", bad: true},
		{in: "0/10s", bad: true},
		{in: "-1/10s", bad: true},
		{in: "x/10s", bad: true},
		{in: "5/10", bad: true},
		{in: "5/-1s", bad: true},
		{in: "5/0s", bad: true},
		{in: "5/10parsecs", bad: true},
		{in: "10/1ns", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadRate) {
					t.Fatalf("ParseRate(%q) = %v, %v; want ErrBadRate", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.str {
				t.Errorf("String() = %q, want %q", got.String(), tc.str)
			}
			var r Rate
			if err := r.Set(tc.str); err != nil || r != got {
				t.Errorf("Set(String()) = %v, %v: does not round-trip", r, err)
			}
		})
	}
}

// step is one request at an offset from t0.
type step struct {
	at    time.Duration
	key   string
	ok    bool
	retry time.Duration // expected retryAfter when refused
}

func TestAllow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	burst := func(key string, n int, at time.Duration) []step {
		var s []step
		for range n {
			s = append(s, step{at: at, key: key, ok: true})
		}
		return s
	}
	cat := func(parts ...[]step) []step {
		var s []step
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		rate  Rate
		steps []step
	}{
		{"burst of Count then refused", Rate{5, 10 * time.Second}, cat(
			burst("a", 5, 0),
			[]step{{at: 0, key: "a", retry: 2 * time.Second}, {at: time.Second, key: "a", retry: time.Second}},
		)},
		{"one more after the interval", Rate{5, 10 * time.Second}, cat(
			burst("a", 5, 0),
			[]step{{at: 2 * time.Second, key: "a", ok: true}, {at: 2 * time.Second, key: "a", retry: 2 * time.Second}},
		)},
		{"refusals do not count", Rate{1, time.Minute}, []step{
			{at: 0, key: "a", ok: true},
			{at: 30 * time.Second, key: "a", retry: 30 * time.Second},
			{at: 59 * time.Second, key: "a", retry: time.Second},
			{at: time.Minute, key: "a", ok: true},
		}},
		{"whole budget again after Per", Rate{5, 10 * time.Second}, cat(
			burst("a", 5, 0), burst("a", 5, 10*time.Second),
			[]step{{at: 10 * time.Second, key: "a", retry: 2 * time.Second}},
		)},
		{"keys are independent", Rate{2, time.Minute}, cat(
			burst("a", 2, 0), burst("b", 2, 0),
			[]step{{at: 0, key: "a", retry: 30 * time.Second}, {at: 0, key: "b", retry: 30 * time.Second}},
		)},
		{"sustained rate", Rate{10, time.Minute}, cat(
			burst("a", 10, 0),
			[]step{{at: 6 * time.Second, key: "a", ok: true}, {at: 12 * time.Second, key: "a", ok: true}, {at: 17 * time.Second, key: "a", retry: time.Second}},
		)},
		{"clock going back refuses, never panics", Rate{1, time.Minute}, []step{
			{at: time.Minute, key: "a", ok: true},
			{at: 0, key: "a", retry: 2 * time.Minute},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(tc.rate, 0)
			for i, s := range tc.steps {
				ok, retry := l.Allow(s.key, t0.Add(s.at))
				if ok != s.ok || (!ok && retry != s.retry) || (ok && retry != 0) {
					t.Fatalf("step %d (%s at %s): Allow = %v, %s; want %v, %s", i, s.key, s.at, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestOffAdmitsEverything(t *testing.T) {
	l := New(Rate{}, 0)
	if l != nil {
		t.Fatal("New(off) is not nil")
	}
	for range 1000 {
		if ok, _ := l.Allow("a", time.Now()); !ok {
			t.Fatal("nil limiter refused")
		}
	}
	if l.Len() != 0 {
		t.Fatal("nil limiter holds keys")
	}
}

func TestSweepDropsPastKeys(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	l := New(Rate{5, 10 * time.Second}, 0)
	for i := range 10000 {
		l.Allow("dev"+strconv.Itoa(i), t0)
	}
	if n := l.Len(); n != 10000 {
		t.Fatalf("Len = %d, want 10000", n)
	}
	// One new key per shard after the keys' TAT (t0 + 2 s) and a whole
	// window later triggers the sweep of every shard.
	for i := 0; l.Len() > 1000 && i < 100000; i++ {
		l.Allow("late"+strconv.Itoa(i), t0.Add(11*time.Second))
	}
	if n := l.Len(); n > 1000 {
		t.Fatalf("Len = %d after the sweep: past keys were kept", n)
	}
}

func TestFullFailsOpen(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	l := New(Rate{1, time.Hour}, shards) // one key per shard
	var tracked, untracked []string
	for i := 0; (len(untracked) < 20 || l.Len() < shards) && i < 100000; i++ {
		k := "dev" + strconv.Itoa(i)
		before := l.Len()
		if ok, _ := l.Allow(k, t0); !ok {
			t.Fatalf("new key %s refused", k)
		}
		if l.Len() > before {
			tracked = append(tracked, k)
		} else {
			untracked = append(untracked, k)
		}
	}
	if l.Len() != shards {
		t.Fatalf("Len = %d, want the cap %d", l.Len(), shards)
	}
	// Untracked keys are admitted again (fail open); tracked ones are
	// still limited.
	for _, k := range untracked {
		if ok, _ := l.Allow(k, t0); !ok {
			t.Fatalf("untracked key %s refused: the full limiter fails closed", k)
		}
	}
	for _, k := range tracked {
		if ok, _ := l.Allow(k, t0); ok {
			t.Fatalf("tracked key %s admitted twice within its hour", k)
		}
	}
}

func TestConcurrentAllowAdmitsExactlyTheBurst(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := New(Rate{100, time.Hour}, 0)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if ok, _ := l.Allow("one", now); ok {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 100 {
		t.Fatalf("admitted %d of 8000 concurrent requests, want exactly 100", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(Rate{5, 10 * time.Second}, 0)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "device-" + strconv.Itoa(i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i&4095], now)
			i++
		}
	})
}

func TestWaitPeeksWithoutCounting(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	l := New(Rate{2, 10 * time.Second}, 0)
	for i, s := range []struct {
		allow bool // Allow before Wait
		at    time.Duration
		want  time.Duration
	}{
		{false, 0, 0}, // unknown key
		{true, 0, 0},  // one of the burst of 2 left
		{true, 0, 5 * time.Second},
		{false, 0, 5 * time.Second}, // Wait counted nothing
		{false, 4 * time.Second, time.Second},
		{false, 5 * time.Second, 0},
	} {
		if s.allow {
			l.Allow("a", t0.Add(s.at))
		}
		if got := l.Wait("a", t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d: Wait = %s, want %s", i, got, s.want)
		}
	}
	var off *Limiter
	if off.Wait("a", t0) != 0 {
		t.Fatal("nil limiter waits")
	}
}
