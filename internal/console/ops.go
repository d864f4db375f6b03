package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Bounds of the trail reads of one page, so a page costs the same however
// long the trail is.
const (
	auditPageSize = 100
	// auditScan bounds the entries one audit page reads for its matches
	// (its Older and Newer links go on from where it stopped).
	auditScan = 1_000
	// chartScan bounds the entries the dashboard reads for its chart: the
	// newest ones, back from the head.
	chartScan  = 20_000
	chartHours = 3
)

type auditPage struct {
	Events                                 []audit.Sealed
	Action, Outcome, RegistrationID, Actor string
	After, Next, Older                     uint64
	HasNext, HasOlder                      bool
	Available                              bool
}

// auditPage shows the trail: by default its newest entries; filters by
// action (a prefix ending in "." matches a family), outcome, registration
// ID and actor; pages move forward with after and back with Older.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	data := &auditPage{Available: c.cfg.Trail != nil}
	if c.cfg.Trail == nil {
		c.render(w, r, http.StatusOK, "audit", &view{Title: "Audit trail", Nav: "audit", Data: data})
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	data.Action, data.Outcome, data.RegistrationID, data.Actor = q.Get("action"), q.Get("outcome"), q.Get("registrationId"), q.Get("actor")
	head, err := c.cfg.Trail.Head(ctx)
	if err != nil {
		c.storeFault(w, r, err)
		return
	}
	after := uint64(0)
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			c.fail(w, r, http.StatusBadRequest, "after must be a sequence number.")
			return
		}
	} else if head > auditPageSize {
		// Without a position, the newest page (unfiltered) or the newest
		// window of the trail (filtered).
		window := uint64(auditPageSize)
		if data.Action != "" || data.Outcome != "" || data.RegistrationID != "" || data.Actor != "" {
			window = auditScan
		}
		if head > window {
			after = head - window
		}
	}
	f := audit.Filter{Action: data.Action, Outcome: data.Outcome, RegistrationID: data.RegistrationID}
	evs, next, err := c.cfg.Trail.List(ctx, f, after, auditPageSize, auditScan)
	if err != nil {
		c.storeFault(w, r, err)
		return
	}
	if data.Actor != "" {
		evs = slices.DeleteFunc(evs, func(e audit.Sealed) bool { return !strings.EqualFold(e.Actor, data.Actor) })
	}
	slices.Reverse(evs) // newest first on the page
	data.Events, data.After, data.Next, data.HasNext = evs, after, next, next < head
	if after > 0 {
		data.HasOlder = true
		if after > auditPageSize {
			data.Older = after - auditPageSize
		}
	}
	c.render(w, r, http.StatusOK, "audit", &view{Title: "Audit trail", Nav: "audit", Data: data})
}

type alertsPage struct {
	Alerts    []*detect.Record
	Status    string
	Next      string
	Available bool
}

func (c *Console) alertsPage(w http.ResponseWriter, r *http.Request) {
	c.renderAlerts(w, r, http.StatusOK, "")
}

func (c *Console) renderAlerts(w http.ResponseWriter, r *http.Request, status int, msg string) {
	data := &alertsPage{Available: c.cfg.Alerts != nil, Status: r.URL.Query().Get("status")}
	if c.cfg.Alerts != nil {
		if data.Status != "" && data.Status != detect.StatusOpen && data.Status != detect.StatusAcknowledged {
			c.fail(w, r, http.StatusBadRequest, "The status filter is open or acknowledged.")
			return
		}
		recs, err := c.cfg.Alerts.List(r.Context(), data.Status, r.URL.Query().Get("after"), auditPageSize)
		if err != nil {
			c.storeFault(w, r, err)
			return
		}
		data.Alerts = recs
		if len(recs) == auditPageSize {
			data.Next = recs[len(recs)-1].ID
		}
	}
	c.render(w, r, status, "alerts", &view{Title: "Alerts", Nav: "alerts", Error: msg, Data: data})
}

// ackAlert acknowledges an alert under If-Match, as the API's POST
// /alerts/{id}/ack does; the acknowledgement names the principal.
func (c *Console) ackAlert(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Alerts == nil {
		c.fail(w, r, http.StatusServiceUnavailable, "Alerts are not available on this instance.")
		return
	}
	p, _ := principal.From(r.Context())
	_, err := c.cfg.Alerts.Ack(r.Context(), pathParam(r, "id"), p.Actor(), r.PostForm.Get("etag"))
	switch {
	case err == nil:
		http.Redirect(w, r, "/console/alerts?acked="+url.QueryEscape(pathParam(r, "id")), http.StatusSeeOther)
	case errors.Is(err, store.ErrPreconditionFailed):
		c.renderAlerts(w, r, http.StatusConflict, "Someone changed this alert after you opened the page; it was not acknowledged again. The list shows its current state.")
	default:
		c.notFoundOr(w, r, err, "No alert has the ID "+pathParam(r, "id")+".")
	}
}

// dashboardData is the dashboard's.
type dashboardData struct {
	Chart     string
	Total     int
	Outcomes  []outcomeRow
	Alerts    []*detect.Record
	OpenCount int
	Posture   *posture.Report
	// PostureAge is how old the shown posture is; PosturePending that a
	// computation is running and none is ready yet.
	PostureAge     string
	PosturePending bool
	Root, Inter    *caCertInfo
	// Partial says the chart may miss older minutes: the trail grew by
	// more than chartScan entries since it was last read.
	Partial     bool
	TrailAbsent bool
}

type outcomeRow struct {
	Attestation               string
	Assigned, Refused, Failed int
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, _ := principal.From(ctx)
	data := &dashboardData{}
	if c.cfg.CA != nil {
		data.Root, data.Inter = certInfo(c.cfg.CA.Root(), c.now()), certInfo(c.cfg.CA.Intermediate(), c.now())
	}
	// Security operations data needs ServiceConfig, as /audit, /alerts
	// and /posture do on the API.
	if p.HasRight(enrollment.RightServiceConfig) {
		if c.cfg.Trail == nil {
			data.TrailAbsent = true
		} else if err := c.chart(ctx, data); err != nil {
			c.storeFault(w, r, err)
			return
		}
		if c.cfg.Alerts != nil {
			recs, err := c.cfg.Alerts.List(ctx, detect.StatusOpen, "", 10)
			if err != nil {
				c.storeFault(w, r, err)
				return
			}
			data.Alerts, data.OpenCount = recs, len(recs)
		}
		data.Posture, data.PostureAge, data.PosturePending = c.posture()
	}
	c.render(w, r, http.StatusOK, "dashboard", &view{Title: "Dashboard", Nav: "dashboard", Data: data})
}

// chartCounts are the registrations of one minute.
type chartCounts struct {
	regs int
	// byAtt counts assigned, refused and failed by attestation.
	byAtt map[string]*[3]int
}

// chartCache keeps the per-minute counts of the trail's registration
// events up to a sequence number, so a dashboard view reads only the
// events chained since the last one. It is derived from the shared trail,
// so every replica's cache agrees with it.
type chartCache struct {
	mu      sync.Mutex
	seq     uint64
	minutes map[int64]*chartCounts
}

// chart counts registrations per minute over the last chartHours, and
// outcomes by attestation, from the newest chartScan entries of the trail
// at most.
func (c *Console) chart(ctx context.Context, data *dashboardData) error {
	head, err := c.cfg.Trail.Head(ctx)
	if err != nil {
		return err
	}
	now := c.now().UTC().Truncate(time.Minute).Add(time.Minute)
	since := now.Add(-chartHours * time.Hour)
	cc := &c.charts
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.minutes == nil || head < cc.seq {
		cc.minutes, cc.seq = map[int64]*chartCounts{}, 0
	}
	from, gap := cc.seq, false
	if head > chartScan && head-chartScan > from {
		from, gap = head-chartScan, true
	}
	if head > from {
		evs, next, err := c.cfg.Trail.List(ctx, audit.Filter{Action: "registration.", Since: since}, from, 0, chartScan)
		if err != nil {
			return err
		}
		// Entries were skipped: the chart misses minutes when what it
		// read does not reach back to its start.
		data.Partial = gap && len(evs) > 0 && evs[0].Time.After(since.Add(time.Minute))
		for _, e := range evs {
			m := e.Time.UTC().Truncate(time.Minute).Unix()
			mc := cc.minutes[m]
			if mc == nil {
				mc = &chartCounts{byAtt: map[string]*[3]int{}}
				cc.minutes[m] = mc
			}
			att := orDefault(e.Details["attestation"], "not attested")
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
		cc.seq = max(next, from)
	}
	buckets := make([]int, chartHours*60)
	byAtt := map[string]*outcomeRow{}
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
		data.Total += mc.regs
		for att, n := range mc.byAtt {
			row := byAtt[att]
			if row == nil {
				row = &outcomeRow{Attestation: att}
				byAtt[att] = row
			}
			row.Assigned, row.Refused, row.Failed = row.Assigned+n[0], row.Refused+n[1], row.Failed+n[2]
		}
	}
	for _, row := range byAtt {
		data.Outcomes = append(data.Outcomes, *row)
	}
	slices.SortFunc(data.Outcomes, func(a, b outcomeRow) int { return strings.Compare(a.Attestation, b.Attestation) })
	data.Chart = drawChart(buckets, since)
	return nil
}

// posture is the last posture report computed, refreshed in the
// background when older than PostureEvery: it walks every collection, too
// slow for a page view over a large store.
func (c *Console) posture() (*posture.Report, string, bool) {
	if c.cfg.Posture == nil {
		return nil, "", false
	}
	c.postureMu.Lock()
	defer c.postureMu.Unlock()
	now := c.now()
	if !c.postureRunning && (c.postureReport == nil || now.Sub(c.postureAt) >= c.cfg.PostureEvery) {
		c.postureRunning = true
		go c.refreshPosture()
	}
	if c.postureReport == nil {
		return nil, "", true
	}
	return c.postureReport, now.Sub(c.postureAt).Truncate(time.Second).String(), false
}

func (c *Console) refreshPosture() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := c.cfg.Posture(ctx)
	c.postureMu.Lock()
	defer c.postureMu.Unlock()
	c.postureRunning = false
	if err != nil {
		c.log.Warn("console: posture", "error", err)
		return
	}
	c.postureReport, c.postureAt = rep, c.now()
}

// Warm does at start what the first views would otherwise do: read the
// trail's newest entries for the dashboard's chart, count every hub's
// devices and compute the posture report. cmd/zdps runs it in the
// background; an error only leaves the work to the first view.
func (c *Console) Warm(ctx context.Context) error {
	if c.cfg.Trail != nil {
		if err := c.chart(ctx, &dashboardData{}); err != nil {
			return err
		}
	}
	c.posture()
	for cont := ""; ; {
		hs, next, err := c.cfg.Store.Hubs.List(ctx, cont, 1000)
		if err != nil {
			return err
		}
		if err := c.counts.fill(ctx, c, hs); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		cont = next
	}
}
