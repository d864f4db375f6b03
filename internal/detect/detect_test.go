package detect_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/detect"
)

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

func ok(id, src string, at time.Duration, details ...string) audit.Event {
	e := audit.Event{ID: fmt.Sprintf("e-%s-%d", id, at), Time: t0.Add(at), Action: audit.ActionRegistrationAssigned, Outcome: audit.OutcomeSuccess,
		Actor: "device", RegistrationID: id, Source: src, Details: map[string]string{}}
	for i := 0; i+1 < len(details); i += 2 {
		e.Details[details[i]] = details[i+1]
	}
	return e
}

func refused(id, src, reason string, at time.Duration) audit.Event {
	e := ok(id, src, at)
	e.Action, e.Outcome, e.Reason = audit.ActionRegistrationRefused, audit.OutcomeRefused, reason
	return e
}

func run(d *detect.Detector, evs []audit.Event) []detect.Alert {
	var out []detect.Alert
	for i := range evs {
		out = append(out, d.Observe(&evs[i])...)
	}
	return out
}

func TestRules(t *testing.T) {
	groupBaseline := func() []audit.Event {
		// 40 minutes of 5 a minute, then 300 in one minute.
		var evs []audit.Event
		for m := range 40 {
			for i := range 5 {
				evs = append(evs, ok(fmt.Sprintf("g-%d-%d", m, i), "10.0.0.1:1", time.Duration(m)*time.Minute+time.Duration(i)*time.Second, detect.DetailGroup, "line-a"))
			}
		}
		for i := range 300 {
			evs = append(evs, ok(fmt.Sprintf("b-%d", i), "10.0.0.1:1", 41*time.Minute+time.Duration(i)*100*time.Millisecond, detect.DetailGroup, "line-a"))
		}
		return evs
	}
	failures := func(id string, n int, src func(i int) string) []audit.Event {
		var evs []audit.Event
		for i := range n {
			evs = append(evs, refused(id, src(i), detect.ReasonUnauthorized, time.Duration(i)*time.Second))
		}
		return evs
	}
	tests := []struct {
		name string
		evs  []audit.Event
		want []string // rule:key
	}{
		{"clone by network", []audit.Event{ok("dev-1", "198.51.100.7:4000", 0), ok("dev-1", "203.0.113.9:5000", 3*time.Minute)},
			[]string{"cloned-credential:dev-1"}},
		{"clone by client key", []audit.Event{ok("dev-1", "198.51.100.7:4000", 0, detect.DetailClientKey, "k1"), ok("dev-1", "198.51.100.8:4000", time.Minute, detect.DetailClientKey, "k2")},
			[]string{"cloned-credential:dev-1"}},
		{"same network is no clone", []audit.Event{ok("dev-1", "198.51.100.7:4000", 0), ok("DEV-1", "198.51.100.99:1", 3*time.Minute)}, nil},
		{"outside the window is no clone", []audit.Event{ok("dev-1", "198.51.100.7:4000", 0), ok("dev-1", "203.0.113.9:5000", 11*time.Minute)}, nil},
		{"brute force", failures("dev-2", 12, func(int) string { return "192.0.2.1:9" }), []string{"brute-force:dev-2"}},
		{"few failures", failures("dev-2", 9, func(int) string { return "192.0.2.1:9" }), nil},
		{"enumeration", func() []audit.Event {
			var evs []audit.Event
			for i := range 25 {
				evs = append(evs, refused(fmt.Sprintf("guess-%d", i), "192.0.2.44:9", detect.ReasonUnauthorized, time.Duration(i)*time.Second))
			}
			return evs
		}(), []string{"enumeration:192.0.2.0/24"}},
		{"burst above baseline", groupBaseline(), []string{"burst:line-a"}},
		{"no baseline, no burst", func() []audit.Event {
			var evs []audit.Event
			for i := range 3000 {
				evs = append(evs, ok(fmt.Sprintf("n-%d", i), "10.0.0.1:1", time.Duration(i)*20*time.Millisecond, detect.DetailGroup, "new"))
			}
			return evs
		}(), nil},
		{"firmware downgrade", []audit.Event{refused("dice-1", "10.1.1.1:1", detect.ReasonFirmwareDowngrade, 0)}, []string{"firmware-downgrade:dice-1"}},
		{"revoked certificate renewal", []audit.Event{refused("dev-9", "10.1.1.1:1", detect.ReasonRenewalRevoked, 0), refused("dev-9", "10.1.1.1:1", detect.ReasonRenewalRevoked, time.Second)},
			[]string{"renewal-revoked-certificate:dev-9"}},
		{"IPv6 networks", []audit.Event{ok("dev-6", "[2001:db8:1:2::5]:1", 0), ok("dev-6", "[2001:db8:1:3::5]:1", time.Second), ok("dev-7", "[2001:db8:1::1]:1", 0), ok("dev-7", "[2001:db8:2::1]:1", time.Second)},
			[]string{"cloned-credential:dev-7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := run(detect.New(detect.Config{}), tc.evs)
			var keys []string
			for _, a := range got {
				keys = append(keys, a.Rule+":"+a.Key)
				if len(a.EventIDs) == 0 || len(a.Evidence) == 0 || a.Severity == "" {
					t.Errorf("alert without evidence: %+v", a)
				}
			}
			if fmt.Sprint(keys) != fmt.Sprint(tc.want) {
				t.Fatalf("alerts %v, want %v", keys, tc.want)
			}
		})
	}
}

// A benign fleet: 10,000 devices, each registering once from its site's
// network, one group per site, steady rates; then a quarter re-registers
// from the same network. Nothing fires.
func TestBenignFleetRaisesNothing(t *testing.T) {
	d := detect.New(detect.Config{})
	var n int
	for i := range 10_000 {
		site := i % 20
		e := ok(fmt.Sprintf("dev-%05d", i), fmt.Sprintf("10.%d.0.%d:40000", site, i%200), time.Duration(i)*300*time.Millisecond, detect.DetailGroup, fmt.Sprintf("site-%d", site), detect.DetailClientKey, fmt.Sprintf("key-%d", i))
		n += len(d.Observe(&e))
	}
	for i := 0; i < 10_000; i += 4 {
		site := i % 20
		e := ok(fmt.Sprintf("dev-%05d", i), fmt.Sprintf("10.%d.0.%d:40001", site, (i+7)%200), time.Hour+time.Duration(i)*100*time.Millisecond, detect.DetailGroup, fmt.Sprintf("site-%d", site), detect.DetailClientKey, fmt.Sprintf("key-%d", i))
		n += len(d.Observe(&e))
	}
	if n != 0 || d.Saturated != 0 {
		t.Fatalf("%d alerts, %d saturated", n, d.Saturated)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	d := detect.New(detect.Config{MaxKeys: 100})
	for i := range 1000 {
		e := refused(fmt.Sprintf("x-%d", i), fmt.Sprintf("10.%d.%d.1:1", i/256, i%256), detect.ReasonUnauthorized, time.Duration(i)*time.Millisecond)
		d.Observe(&e)
	}
	if d.Saturated == 0 {
		t.Fatal("1,000 keys in tables of 100 and nothing was dropped")
	}
	// Once the window has passed, room is made again.
	before := d.Saturated
	e := refused("late", "10.200.0.1:1", detect.ReasonUnauthorized, time.Hour)
	d.Observe(&e)
	if d.Saturated != before {
		t.Fatal("expired keys were not dropped")
	}
}
