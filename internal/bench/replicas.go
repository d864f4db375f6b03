package bench

import (
	"bufio"
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"
)

// Several replicas and what the store spent: a run may spread its devices
// over several device API endpoints (replicas of one instance on a shared
// PostgreSQL), and read the store's counters from the servers' /metrics
// before and after the timed phase.

// EndpointFigures are one endpoint's share of a run over several.
type EndpointFigures struct {
	Endpoint               string  `json:"endpoint"`
	Succeeded              int     `json:"succeeded"`
	Failed                 int     `json:"failed"`
	RegistrationsPerSecond float64 `json:"registrationsPerSecond"`
	LatencyMs              Latency `json:"latencyMs"`
}

// StoreCounters are the store's counters as the servers export them
// (summed over the endpoints): zdps_store_transaction_retries_total,
// zdps_store_conflicts_total, zdps_store_round_trips_total,
// zdps_store_statements_total. A server on bbolt exports none of them.
type StoreCounters struct {
	Retries, Conflicts, RoundTrips, Statements float64
	// Found reports whether any of them was exported.
	Found bool
}

// Add sums o into c (the counters of several replicas).
func (c *StoreCounters) Add(o StoreCounters) {
	c.Retries += o.Retries
	c.Conflicts += o.Conflicts
	c.RoundTrips += o.RoundTrips
	c.Statements += o.Statements
	c.Found = c.Found || o.Found
}

// StoreFigures are the store counters' growth over the timed phase, in
// total and per successful registration.
type StoreFigures struct {
	Retries                    float64 `json:"retries"`
	Conflicts                  float64 `json:"conflicts"`
	RoundTrips                 float64 `json:"roundTrips"`
	Statements                 float64 `json:"statements"`
	RetriesPerRegistration     float64 `json:"retriesPerRegistration"`
	ConflictsPerRegistration   float64 `json:"conflictsPerRegistration"`
	RoundTripsPerRegistration  float64 `json:"roundTripsPerRegistration"`
	StatementsPerRegistration  float64 `json:"statementsPerRegistration"`
	ReadFromMetricsOfEndpoints int     `json:"readFromMetricsOfEndpoints"`
}

// ParseStoreCounters reads the store counters from a Prometheus text
// exposition (unlabelled counters; anything else is skipped).
func ParseStoreCounters(exposition []byte) StoreCounters {
	var c StoreCounters
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		var dst *float64
		switch name {
		case "zdps_store_transaction_retries_total":
			dst = &c.Retries
		case "zdps_store_conflicts_total":
			dst = &c.Conflicts
		case "zdps_store_round_trips_total":
			dst = &c.RoundTrips
		case "zdps_store_statements_total":
			dst = &c.Statements
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		*dst, c.Found = v, true
	}
	return c
}

// endpoints is every endpoint devices register at, in order.
func (c *Config) endpoints() []string {
	return append([]string{c.Endpoint}, c.Endpoints...)
}

// perEndpoint tallies a run over several endpoints.
type perEndpoint struct {
	ok      []int
	failed  []int
	samples [][]time.Duration
}

func newPerEndpoint(n int) *perEndpoint {
	return &perEndpoint{ok: make([]int, n), failed: make([]int, n), samples: make([][]time.Duration, n)}
}

func (p *perEndpoint) figures(eps []string, elapsed time.Duration) []EndpointFigures {
	out := make([]EndpointFigures, len(eps))
	for i, ep := range eps {
		out[i] = EndpointFigures{Endpoint: ep, Succeeded: p.ok[i], Failed: p.failed[i], LatencyMs: Summarize(p.samples[i])}
		if elapsed > 0 {
			out[i].RegistrationsPerSecond = float64(p.ok[i]) / elapsed.Seconds()
		}
	}
	return out
}

// storeFigures reads the counters again and reports their growth since
// before; nil when the servers export none.
func (r *runner) storeFigures(ctx context.Context, before StoreCounters, beforeOK bool, succeeded int) *StoreFigures {
	if r.cfg.StoreCounters == nil || !beforeOK {
		return nil
	}
	after, err := r.cfg.StoreCounters(ctx)
	if err != nil || !after.Found {
		return nil
	}
	f := &StoreFigures{
		Retries:                    after.Retries - before.Retries,
		Conflicts:                  after.Conflicts - before.Conflicts,
		RoundTrips:                 after.RoundTrips - before.RoundTrips,
		Statements:                 after.Statements - before.Statements,
		ReadFromMetricsOfEndpoints: len(r.cfg.endpoints()),
	}
	if succeeded > 0 {
		n := float64(succeeded)
		f.RetriesPerRegistration, f.ConflictsPerRegistration, f.RoundTripsPerRegistration = f.Retries/n, f.Conflicts/n, f.RoundTrips/n
		f.StatementsPerRegistration = f.Statements / n
	}
	return f
}
