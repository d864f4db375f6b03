package detect_test

import (
	"testing"
	"time"

	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/store/memory"
)

// A throttled network is refused on every address in it until its time
// is up; other networks are not.
func TestBlocklist(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	b := &detect.Blocklist{Backend: memory.New(), Now: func() time.Time { return now }}
	if _, blocked := b.Blocked(t.Context(), "192.0.2.7:4000"); blocked {
		t.Fatal("blocked before any throttle")
	}
	if err := b.ThrottleSource(t.Context(), detect.Network("192.0.2.7:4000"), 15*time.Minute); err != nil {
		t.Fatal(err)
	}
	if d, blocked := b.Blocked(t.Context(), "192.0.2.200:1"); !blocked || d != 15*time.Minute {
		t.Fatalf("same /24: %v %v", d, blocked)
	}
	if _, blocked := b.Blocked(t.Context(), "198.51.100.1:1"); blocked {
		t.Fatal("another network blocked")
	}
	now = now.Add(16 * time.Minute)
	if _, blocked := b.Blocked(t.Context(), "192.0.2.7:4000"); blocked {
		t.Fatal("still blocked after its time")
	}
}
