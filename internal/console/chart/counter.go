package chart

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/audit"
)

// Bounds of the chart.
const (
	// Scan bounds the entries one read takes for the chart: the newest
	// ones, back from the head.
	Scan = 20_000
	// Hours is how far back the chart reaches.
	Hours = 3
)

// Trail is what the chart reads of the sealed audit trail (*audit.Log).
type Trail interface {
	List(ctx context.Context, f audit.Filter, after uint64, limit, maxScan int) ([]audit.Sealed, uint64, error)
	Head(ctx context.Context) (uint64, error)
}

// Outcome is the registrations of one attestation type over the chart.
type Outcome struct {
	Attestation               string
	Assigned, Refused, Failed int
}

// Result is what the dashboard shows of the chart.
type Result struct {
	// Chart is the SVG (Draw).
	Chart    string
	Total    int
	Outcomes []Outcome
	// Partial says the chart may miss older minutes: the trail grew by
	// more than Scan entries since it was last read.
	Partial bool
}

// minute counts the registrations of one minute.
type minute struct {
	regs int
	// byAtt counts assigned, refused and failed by attestation.
	byAtt map[string]*[3]int
}

// Counter keeps the per-minute counts of the trail's registration events
// up to a sequence number. It is derived from the shared trail, so every
// replica's counter agrees with it. The zero value is ready.
type Counter struct {
	mu      sync.Mutex
	seq     uint64
	minutes map[int64]*minute
}

// Read counts registrations per minute over the last Hours before now,
// and outcomes by attestation, from the newest Scan entries of the trail
// at most.
func (cc *Counter) Read(ctx context.Context, trail Trail, now time.Time) (Result, error) {
	var res Result
	head, err := trail.Head(ctx)
	if err != nil {
		return res, err
	}
	now = now.UTC().Truncate(time.Minute).Add(time.Minute)
	since := now.Add(-Hours * time.Hour)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.minutes == nil || head < cc.seq {
		cc.minutes, cc.seq = map[int64]*minute{}, 0
	}
	from, gap := cc.seq, false
	if head > Scan && head-Scan > from {
		from, gap = head-Scan, true
	}
	if head > from {
		evs, next, err := trail.List(ctx, audit.Filter{Action: "registration.", Since: since}, from, 0, Scan)
		if err != nil {
			return res, err
		}
		// Entries were skipped: the chart misses minutes when what it
		// read does not reach back to its start.
		res.Partial = gap && len(evs) > 0 && evs[0].Time.After(since.Add(time.Minute))
		for _, e := range evs {
			cc.add(e)
		}
		cc.seq = max(next, from)
	}
	buckets := make([]int, Hours*60)
	byAtt := map[string]*Outcome{}
	for m, mc := range cc.minutes {
		i := int(time.Unix(m, 0).Sub(since) / time.Minute)
		if i < 0 {
			delete(cc.minutes, m) // older than the chart: never shown again
			continue
		}
		if i >= len(buckets) {
			continue
		}
		buckets[i] += mc.regs
		res.Total += mc.regs
		for att, n := range mc.byAtt {
			row := byAtt[att]
			if row == nil {
				row = &Outcome{Attestation: att}
				byAtt[att] = row
			}
			row.Assigned, row.Refused, row.Failed = row.Assigned+n[0], row.Refused+n[1], row.Failed+n[2]
		}
	}
	for _, row := range byAtt {
		res.Outcomes = append(res.Outcomes, *row)
	}
	slices.SortFunc(res.Outcomes, func(a, b Outcome) int { return strings.Compare(a.Attestation, b.Attestation) })
	res.Chart = Draw(buckets, since)
	return res, nil
}

// add counts one registration event in its minute.
func (cc *Counter) add(e audit.Sealed) {
	m := e.Time.UTC().Truncate(time.Minute).Unix()
	mc := cc.minutes[m]
	if mc == nil {
		mc = &minute{byAtt: map[string]*[3]int{}}
		cc.minutes[m] = mc
	}
	att := e.Details["attestation"]
	if att == "" {
		att = "not attested"
	}
	row := mc.byAtt[att]
	if row == nil {
		row = new([3]int)
		mc.byAtt[att] = row
	}
	switch e.Action {
	case audit.ActionRegistrationAssigned, audit.ActionRegistrationRenewed:
		mc.regs++
		row[0]++
	case audit.ActionRegistrationRefused:
		row[1]++
	case audit.ActionRegistrationFailed:
		row[2]++
	}
}
