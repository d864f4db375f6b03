package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/console/chart"
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
	// Result is the chart, its total and outcomes by attestation.
	chart.Result
	Alerts    []*detect.Record
	OpenCount int
	Posture   *posture.Report
	// PostureAge is how old the shown posture is; PosturePending that a
	// computation is running and none is ready yet.
	PostureAge     string
	PosturePending bool
	Root, Inter    *caCertInfo
	TrailAbsent    bool
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
		} else {
			res, err := c.charts.Read(ctx, c.cfg.Trail, c.now())
			if err != nil {
				c.storeFault(w, r, err)
				return
			}
			data.Result = res
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
		if _, err := c.charts.Read(ctx, c.cfg.Trail, c.now()); err != nil {
			return err
		}
	}
	c.posture()
	for cont := ""; ; {
		hs, next, err := c.cfg.Store.Hubs.List(ctx, cont, 1000)
		if err != nil {
			return err
		}
		if err := c.counts.Fill(ctx, hs); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		cont = next
	}
}
