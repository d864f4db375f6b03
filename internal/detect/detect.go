package detect

import (
	"fmt"
	"maps"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
)

// Rules.
const (
	RuleClonedCredential  = "cloned-credential"
	RuleBruteForce        = "brute-force"
	RuleEnumeration       = "enumeration"
	RuleBurst             = "burst"
	RuleFirmwareDowngrade = "firmware-downgrade"
	RuleRenewalRevoked    = "renewal-revoked-certificate"
)

// Severities.
const (
	SeverityHigh   = "high"
	SeverityMedium = "medium"
)

// Reason classes of refused registrations the detector reads (the
// pipeline writes them as audit.Event.Reason).
const (
	ReasonUnauthorized      = "unauthorized"
	ReasonFirmwareDowngrade = "firmware-downgrade"
	ReasonRenewalRevoked    = "renewal-revoked"
	ReasonRenewalUnknown    = "renewal-unknown"
)

// ActionRegistrationConflict is the event internal/sites records when an
// edge gateway pushes a registration whose ID is registered elsewhere
// (central or another gateway): a cloned credential by definition.
const ActionRegistrationConflict = "registration.conflict"

// Detail keys of events the detector reads.
const (
	DetailGroup     = "group"
	DetailClientKey = "clientKey"
)

// Config tunes the rules; zero fields take the defaults.
type Config struct {
	// CloneWindow: two networks or keys for one ID within it (10 min).
	CloneWindow time.Duration
	// FailureWindow, FailuresPerID and IDsPerSource: brute force is
	// FailuresPerID failures for one ID, enumeration failures for
	// IDsPerSource distinct IDs from one network, within FailureWindow
	// (5 min, 10, 20).
	FailureWindow time.Duration
	FailuresPerID int
	IDsPerSource  int
	// Burst: a group's registrations in one minute above BurstFactor ×
	// its EWMA baseline and above BurstMinimum, once it has
	// BurstWarmup minutes of history (10, 100, 30).
	BurstFactor  float64
	BurstMinimum int
	BurstWarmup  int
	// MaxKeys bounds each rule's memory (100,000 keys).
	MaxKeys int
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defi := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.CloneWindow, 10*time.Minute)
	def(&c.FailureWindow, 5*time.Minute)
	defi(&c.FailuresPerID, 10)
	defi(&c.IDsPerSource, 20)
	if c.BurstFactor <= 0 {
		c.BurstFactor = 10
	}
	defi(&c.BurstMinimum, 100)
	defi(&c.BurstWarmup, 30)
	defi(&c.MaxKeys, 100_000)
}

// Alert is one finding with its evidence.
type Alert struct {
	Rule     string
	Severity string
	// Key is what the rule tracks: a registration ID, a source network or
	// a group.
	Key            string
	RegistrationID string
	Group          string
	Time           time.Time
	// Evidence are the facts that made it fire, never secrets.
	Evidence map[string]string
	// EventIDs are the audit events behind it (the last ones).
	EventIDs []string
}

// Detector runs every rule. It is not safe for concurrent use: feed it
// from one goroutine.
type Detector struct {
	cfg Config
	// per registration ID: networks and client keys seen recently.
	clones window[*cloneState]
	// per registration ID: recent failures.
	failures window[*countState]
	// per source network: recent failing IDs.
	enum window[*setState]
	// per group: the burst state.
	bursts map[string]*burstState
	// raised suppresses a second alert for one rule and key per window.
	raised window[struct{}]
	// Saturated counts observations a full rule table had to skip.
	Saturated int
}

// New builds a detector.
func New(cfg Config) *Detector {
	cfg.defaults()
	return &Detector{
		cfg:      cfg,
		clones:   newWindow[*cloneState](cfg.MaxKeys),
		failures: newWindow[*countState](cfg.MaxKeys),
		enum:     newWindow[*setState](cfg.MaxKeys),
		bursts:   map[string]*burstState{},
		raised:   newWindow[struct{}](cfg.MaxKeys),
	}
}

// Network is the source network of an address: IPv4 /24, IPv6 /48; ""
// when addr has no IP.
func Network(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return ""
	case ip.To4() != nil:
		return ip.Mask(net.CIDRMask(24, 32)).String() + "/24"
	default:
		return ip.Mask(net.CIDRMask(48, 128)).String() + "/48"
	}
}

// Observe feeds one event and returns the alerts it raises.
func (d *Detector) Observe(e *audit.Event) []Alert {
	if !strings.HasPrefix(e.Action, "registration.") {
		return nil
	}
	var out []Alert
	add := func(a *Alert) {
		if a == nil {
			return
		}
		key := a.Rule + "\x00" + a.Key
		if _, ok := d.raised.get(key, e.Time); ok {
			return
		}
		if !d.raised.put(key, struct{}{}, e.Time, e.Time.Add(d.window(a.Rule))) {
			d.Saturated++
		}
		out = append(out, *a)
	}
	id := strings.ToLower(e.RegistrationID)
	if e.Action == ActionRegistrationConflict {
		ev := maps.Clone(e.Details)
		if ev == nil {
			ev = map[string]string{}
		}
		add(&Alert{Rule: RuleClonedCredential, Severity: SeverityHigh, Key: id, RegistrationID: e.RegistrationID, Group: e.Details[DetailGroup], Time: e.Time,
			Evidence: ev, EventIDs: []string{e.ID}})
		return out
	}
	net := Network(e.Source)
	switch e.Outcome {
	case audit.OutcomeSuccess:
		add(d.clone(e, id, net))
		add(d.burst(e))
	case audit.OutcomeRefused:
		switch e.Reason {
		case ReasonUnauthorized:
			add(d.bruteForce(e, id))
			add(d.enumeration(e, id, net))
		case ReasonFirmwareDowngrade:
			add(&Alert{Rule: RuleFirmwareDowngrade, Severity: SeverityHigh, Key: id, RegistrationID: e.RegistrationID, Group: e.Details[DetailGroup], Time: e.Time,
				Evidence: map[string]string{"source": net, "refusal": e.Reason}, EventIDs: []string{e.ID}})
		case ReasonRenewalRevoked, ReasonRenewalUnknown:
			add(&Alert{Rule: RuleRenewalRevoked, Severity: SeverityHigh, Key: id, RegistrationID: e.RegistrationID, Time: e.Time,
				Evidence: map[string]string{"source": net, "refusal": e.Reason}, EventIDs: []string{e.ID}})
		}
	}
	return out
}

func (d *Detector) window(rule string) time.Duration {
	switch rule {
	case RuleClonedCredential:
		return d.cfg.CloneWindow
	case RuleBurst:
		return 10 * time.Minute
	}
	return d.cfg.FailureWindow
}

type cloneState struct {
	// networks and keys with the time each was last seen and the event.
	networks map[string]seen
	keys     map[string]seen
}

type seen struct {
	at    time.Time
	event string
}

func (d *Detector) clone(e *audit.Event, id, network string) *Alert {
	st, ok := d.clones.get(id, e.Time)
	if !ok {
		st = &cloneState{networks: map[string]seen{}, keys: map[string]seen{}}
	}
	cutoff := e.Time.Add(-d.cfg.CloneWindow)
	prune := func(m map[string]seen) {
		for k, v := range m {
			if v.at.Before(cutoff) {
				delete(m, k)
			}
		}
	}
	prune(st.networks)
	prune(st.keys)
	// A small bound per ID: a clone needs two; more adds nothing.
	if network != "" && (len(st.networks) < 8 || hasKey(st.networks, network)) {
		st.networks[network] = seen{e.Time, e.ID}
	}
	if k := e.Details[DetailClientKey]; k != "" && (len(st.keys) < 8 || hasKey(st.keys, k)) {
		st.keys[k] = seen{e.Time, e.ID}
	}
	if !d.clones.put(id, st, e.Time, e.Time.Add(d.cfg.CloneWindow)) {
		d.Saturated++
	}
	var what string
	var m map[string]seen
	switch {
	case len(st.keys) > 1:
		what, m = "clientKeys", st.keys
	case len(st.networks) > 1:
		what, m = "networks", st.networks
	default:
		return nil
	}
	names, events := sortedSeen(m)
	return &Alert{Rule: RuleClonedCredential, Severity: SeverityHigh, Key: id, RegistrationID: e.RegistrationID, Group: e.Details[DetailGroup], Time: e.Time,
		Evidence: map[string]string{what: strings.Join(names, ","), "window": d.cfg.CloneWindow.String()}, EventIDs: events}
}

func hasKey(m map[string]seen, k string) bool { _, ok := m[k]; return ok }

func sortedSeen(m map[string]seen) (names, events []string) {
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		events = append(events, m[k].event)
	}
	return names, events
}

type countState struct {
	times  []time.Time
	events []string
}

func (s *countState) add(t time.Time, ev string, cutoff time.Time, keep int) {
	i := 0
	for i < len(s.times) && s.times[i].Before(cutoff) {
		i++
	}
	s.times, s.events = append(s.times[i:], t), append(s.events[i:], ev)
	if len(s.times) > keep {
		s.times, s.events = s.times[len(s.times)-keep:], s.events[len(s.events)-keep:]
	}
}

func (d *Detector) bruteForce(e *audit.Event, id string) *Alert {
	st, ok := d.failures.get(id, e.Time)
	if !ok {
		st = &countState{}
	}
	st.add(e.Time, e.ID, e.Time.Add(-d.cfg.FailureWindow), d.cfg.FailuresPerID)
	if !d.failures.put(id, st, e.Time, e.Time.Add(d.cfg.FailureWindow)) {
		d.Saturated++
	}
	if len(st.times) < d.cfg.FailuresPerID {
		return nil
	}
	return &Alert{Rule: RuleBruteForce, Severity: SeverityMedium, Key: id, RegistrationID: e.RegistrationID, Time: e.Time,
		Evidence: map[string]string{"failures": strconv.Itoa(len(st.times)), "window": d.cfg.FailureWindow.String(), "lastSource": Network(e.Source)},
		EventIDs: append([]string(nil), st.events...)}
}

type setState struct {
	ids    map[string]time.Time
	events []string
}

func (d *Detector) enumeration(e *audit.Event, id, network string) *Alert {
	if network == "" {
		return nil
	}
	st, ok := d.enum.get(network, e.Time)
	if !ok {
		st = &setState{ids: map[string]time.Time{}}
	}
	cutoff := e.Time.Add(-d.cfg.FailureWindow)
	for k, t := range st.ids {
		if t.Before(cutoff) {
			delete(st.ids, k)
		}
	}
	if len(st.ids) < d.cfg.IDsPerSource || hasTime(st.ids, id) {
		st.ids[id] = e.Time
	}
	st.events = append(st.events, e.ID)
	if len(st.events) > 10 {
		st.events = st.events[len(st.events)-10:]
	}
	if !d.enum.put(network, st, e.Time, e.Time.Add(d.cfg.FailureWindow)) {
		d.Saturated++
	}
	if len(st.ids) < d.cfg.IDsPerSource {
		return nil
	}
	return &Alert{Rule: RuleEnumeration, Severity: SeverityHigh, Key: network, Time: e.Time,
		Evidence: map[string]string{"source": network, "distinctIds": strconv.Itoa(len(st.ids)), "window": d.cfg.FailureWindow.String()},
		EventIDs: append([]string(nil), st.events...)}
}

func hasTime(m map[string]time.Time, k string) bool { _, ok := m[k]; return ok }

// burstState is a group's per-minute count and its EWMA baseline.
type burstState struct {
	minute   int64 // unix minute of count
	count    int
	baseline float64
	minutes  int // minutes of history folded into baseline
}

// ewmaAlpha weighs the last minute in the baseline (about a 30-minute
// memory).
const ewmaAlpha = 2.0 / 31

func (d *Detector) burst(e *audit.Event) *Alert {
	g := e.Details[DetailGroup]
	if g == "" {
		return nil
	}
	g = strings.ToLower(g)
	st, ok := d.bursts[g]
	if !ok {
		if len(d.bursts) >= d.cfg.MaxKeys {
			d.Saturated++
			return nil
		}
		st = &burstState{minute: e.Time.Unix() / 60}
		d.bursts[g] = st
	}
	m := e.Time.Unix() / 60
	if m > st.minute {
		// Fold the finished minute and the empty ones since.
		gap := m - st.minute
		st.baseline = st.baseline*(1-ewmaAlpha) + ewmaAlpha*float64(st.count)
		if gap > 1 {
			st.baseline *= math.Pow(1-ewmaAlpha, float64(min(gap-1, 1000)))
		}
		st.minutes += int(min(gap, 1000))
		st.minute, st.count = m, 0
	}
	st.count++
	if st.minutes < d.cfg.BurstWarmup || st.count < d.cfg.BurstMinimum || float64(st.count) <= d.cfg.BurstFactor*st.baseline {
		return nil
	}
	return &Alert{Rule: RuleBurst, Severity: SeverityMedium, Key: g, Group: e.Details[DetailGroup], Time: e.Time,
		Evidence: map[string]string{"perMinute": strconv.Itoa(st.count), "baselinePerMinute": fmt.Sprintf("%.1f", st.baseline), "factor": fmt.Sprintf("%g", d.cfg.BurstFactor)},
		EventIDs: []string{e.ID}}
}
