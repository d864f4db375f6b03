package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/zdps/zdps/pkg/dps"
)

// AuditQuery selects audit events. Zero fields do not filter.
type AuditQuery struct {
	// Since and Until bound the events' time: at or after Since, before
	// Until.
	Since, Until time.Time
	// Action is an exact action, or a prefix ending in "." (e.g.
	// "registration.").
	Action         string
	RegistrationID string
	// Outcome is success, refused or failed.
	Outcome string
	// After is the sequence to start after (the previous page's Next).
	After uint64
	// Limit is the most events of one page; 0 lets the server choose.
	Limit int
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339))
	}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("action", q.Action)
	set("registrationId", q.RegistrationID)
	set("outcome", q.Outcome)
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// AuditEvents returns one page of the audit events q selects (GET
// /audit). Pass the page's Next as q.After for the next page; Next equal
// to q.After means there was nothing more.
func (c *Client) AuditEvents(ctx context.Context, q AuditQuery) (*dps.AuditPage, error) {
	return call[dps.AuditPage](ctx, c, request{method: http.MethodGet, path: "/audit", query: q.values()})
}

// errNoProgress guards against a server whose next does not advance.
var errNoProgress = errors.New("client: server answered a page with events but did not advance next")

// AllAuditEvents iterates over every event q selects from q.After on,
// one page in memory at a time. It ends at the current end of the trail.
func (c *Client) AllAuditEvents(ctx context.Context, q AuditQuery) iter.Seq2[dps.SealedAuditEvent, error] {
	return func(yield func(dps.SealedAuditEvent, error) bool) {
		for {
			p, err := c.AuditEvents(ctx, q)
			if err != nil {
				yield(dps.SealedAuditEvent{}, err)
				return
			}
			for _, e := range p.Events {
				if !yield(e, nil) {
					return
				}
			}
			if p.Next <= q.After {
				// The server scanned nothing new: the end of the trail.
				if len(p.Events) > 0 {
					yield(dps.SealedAuditEvent{}, errNoProgress)
				}
				return
			}
			q.After = p.Next
		}
	}
}

// VerifyAudit checks the trail's chain and signed head (GET
// /audit/verify). A trail that does not verify is not an error of the
// call: the report's Problem says where it breaks.
func (c *Client) VerifyAudit(ctx context.Context) (*dps.AuditReport, error) {
	return call[dps.AuditReport](ctx, c, request{method: http.MethodGet, path: "/audit/verify"})
}

// AlertQuery selects alerts. Zero fields do not filter.
type AlertQuery struct {
	// Status is open or acknowledged.
	Status string
	// After is the alert ID to start after (IDs sort by time).
	After string
	// Limit is the most alerts of one page; 0 lets the server choose.
	Limit int
}

// Alerts returns one page of alerts, oldest first (GET /alerts). Pass the
// last alert's ID as q.After for the next page.
func (c *Client) Alerts(ctx context.Context, q AlertQuery) ([]*dps.Alert, error) {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out []*dps.Alert
	if err := c.do(ctx, request{method: http.MethodGet, path: "/alerts", query: v, out: &out}); err != nil {
		return nil, err
	}
	return out, nil
}

// AllAlerts iterates over every alert q selects from q.After on, one page
// in memory at a time.
func (c *Client) AllAlerts(ctx context.Context, q AlertQuery) iter.Seq2[*dps.Alert, error] {
	return func(yield func(*dps.Alert, error) bool) {
		for {
			page, err := c.Alerts(ctx, q)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, a := range page {
				if !yield(a, nil) {
					return
				}
			}
			if len(page) == 0 {
				return
			}
			last := page[len(page)-1].ID
			if last <= q.After {
				yield(nil, fmt.Errorf("client: server answered alert %q after %q", last, q.After))
				return
			}
			q.After = last
		}
	}
}

// Alert returns the alert id (ErrNotFound when there is none).
func (c *Client) Alert(ctx context.Context, id string) (*dps.Alert, error) {
	return call[dps.Alert](ctx, c, request{method: http.MethodGet, path: "/alerts/" + escape(id)})
}

// AckAlert acknowledges the alert id, conditionally on ifMatchETag when
// set (ErrPreconditionFailed when it changed since).
func (c *Client) AckAlert(ctx context.Context, id, ifMatchETag string) (*dps.Alert, error) {
	return call[dps.Alert](ctx, c, request{method: http.MethodPost, path: "/alerts/" + escape(id) + "/ack", header: ifMatch(ifMatchETag)})
}

// Posture returns the security posture report (GET /posture): a score
// and the findings, most severe first.
func (c *Client) Posture(ctx context.Context) (*dps.PostureReport, error) {
	return call[dps.PostureReport](ctx, c, request{method: http.MethodGet, path: "/posture"})
}

// Metrics returns the Prometheus text exposition of the instance's metrics
// (GET /metrics, ServiceConfig unless the server serves it openly).
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/metrics", false)
}
