package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/zdps/zdps/pkg/dps"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/store"
)

// BucketAlerts holds alert records by ID.
const BucketAlerts store.Bucket = "alerts"

// Alert statuses.
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
)

// Responses a rule can be configured with.
const (
	ResponseNone     = "none"
	ResponseThrottle = "throttle-source"
	ResponseDisable  = "disable-enrollment"
)

// ErrNotFound: no alert with that ID.
var ErrNotFound = errors.New("detect: alert not found")

// Record is a stored alert (its wire form).
type Record = dps.Alert

// Responder carries out automatic responses; nil disables them.
type Responder interface {
	// ThrottleSource refuses registrations from a source network for d.
	ThrottleSource(ctx context.Context, network string, d time.Duration) error
	// DisableEnrollment disables the individual enrollment of a
	// registration ID, or else its group.
	DisableEnrollment(ctx context.Context, registrationID, group string) error
}

// Recorder writes audit events in a transaction (*audit.Log).
type Recorder interface {
	Record(ctx context.Context, tx store.Tx, e audit.Event) error
}

// WatchConfig configures a Watch.
type WatchConfig struct {
	Backend  store.Backend
	Recorder Recorder
	Detector *Detector
	// Responses maps a rule to a Response constant (ResponseNone when
	// absent).
	Responses map[string]string
	Responder Responder
	// ThrottleFor is how long ResponseThrottle refuses a source (15 min).
	ThrottleFor time.Duration
	// OnAlert, when set, is called after an alert is stored (metrics).
	OnAlert func(*Record)
	Logger  *slog.Logger
}

// Watch stores the detector's alerts and runs their responses. It is the
// Sink of an export.Exporter over the sealed trail, which gives it a
// stored cursor and a lease.
type Watch struct {
	cfg WatchConfig
}

// NewWatch validates cfg.
func NewWatch(cfg WatchConfig) (*Watch, error) {
	if cfg.Backend == nil || cfg.Recorder == nil || cfg.Detector == nil {
		return nil, errors.New("detect: Backend, Recorder and Detector are required")
	}
	for rule, r := range cfg.Responses {
		if r != ResponseNone && r != ResponseThrottle && r != ResponseDisable {
			return nil, fmt.Errorf("detect: rule %s: unknown response %q", rule, r)
		}
		if r != ResponseNone && cfg.Responder == nil {
			return nil, fmt.Errorf("detect: rule %s: response %s needs a Responder", rule, r)
		}
	}
	if cfg.ThrottleFor <= 0 {
		cfg.ThrottleFor = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watch{cfg: cfg}, nil
}

// Deliver observes a batch of sealed events and stores what they raise.
func (w *Watch) Deliver(ctx context.Context, evs []audit.Sealed) error {
	var recs []*Record
	for i := range evs {
		for _, a := range w.cfg.Detector.Observe(&evs[i].AuditEvent) {
			recs = append(recs, &Record{ID: audit.NewID(a.Time), Rule: a.Rule, Severity: a.Severity, Key: a.Key, RegistrationID: a.RegistrationID,
				Group: a.Group, Time: a.Time, Evidence: a.Evidence, EventIDs: a.EventIDs, Status: StatusOpen, Response: w.cfg.Responses[a.Rule]})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	for _, r := range recs {
		if r.Response == ResponseNone {
			r.Response = ""
		}
	}
	if err := w.cfg.Backend.Update(ctx, func(tx store.Tx) error {
		for _, r := range recs {
			if err := putRecord(ctx, tx, r, store.Condition{IfNoneMatch: true}); err != nil {
				return err
			}
			details := maps.Clone(r.Evidence)
			details["alertId"], details["severity"], details["key"] = r.ID, r.Severity, r.Key
			if r.Response != "" {
				details["response"] = r.Response
			}
			if err := w.cfg.Recorder.Record(ctx, tx, audit.Event{Action: audit.ActionAlert, Outcome: audit.OutcomeSuccess, Reason: r.Rule, Actor: "detector",
				RegistrationID: r.RegistrationID, Details: details}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, r := range recs {
		w.cfg.Logger.WarnContext(ctx, "alert", "rule", r.Rule, "severity", r.Severity, "key", r.Key, "alert_id", r.ID)
		if w.cfg.OnAlert != nil {
			w.cfg.OnAlert(r)
		}
		w.respond(ctx, r)
	}
	return nil
}

func (w *Watch) respond(ctx context.Context, r *Record) {
	var err error
	switch r.Response {
	case ResponseThrottle:
		src := r.Evidence["source"]
		if src == "" {
			src = r.Evidence["lastSource"]
		}
		if src != "" {
			err = w.cfg.Responder.ThrottleSource(ctx, src, w.cfg.ThrottleFor)
		}
	case ResponseDisable:
		if r.RegistrationID != "" || r.Group != "" {
			err = w.cfg.Responder.DisableEnrollment(ctx, r.RegistrationID, r.Group)
		}
	}
	if err != nil {
		w.cfg.Logger.ErrorContext(ctx, "alert response failed", "rule", r.Rule, "response", r.Response, "alert_id", r.ID, "error", err)
	}
}

func putRecord(ctx context.Context, tx store.Tx, r *Record, cond store.Condition) error {
	r.ETag = ""
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	etag, err := tx.Put(ctx, BucketAlerts, r.ID, raw, cond)
	r.ETag = etag
	return err
}

// Close does nothing (Watch is an export.Sink).
func (w *Watch) Close() error { return nil }

// Alerts reads and acknowledges stored alerts.
type Alerts struct {
	Backend  store.Backend
	Recorder Recorder
	Now      func() time.Time
}

// List returns alerts after the ID after, oldest first, with status
// ("" for all), at most limit.
func (a *Alerts) List(ctx context.Context, status, after string, limit int) ([]*Record, error) {
	var out []*Record
	err := a.Backend.View(ctx, func(tx store.Tx) error {
		for {
			items, err := tx.Scan(ctx, BucketAlerts, "", after, 500)
			if err != nil {
				return err
			}
			for _, it := range items {
				r, err := decode(it)
				if err != nil {
					return err
				}
				if status == "" || strings.EqualFold(status, r.Status) {
					out = append(out, r)
					if limit > 0 && len(out) == limit {
						return nil
					}
				}
				after = it.Key
			}
			if len(items) < 500 {
				return nil
			}
		}
	})
	return out, err
}

func decode(it store.Item) (*Record, error) {
	var r Record
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return nil, fmt.Errorf("detect: alert %s: %w", it.Key, err)
	}
	r.ETag = it.ETag
	return &r, nil
}

// Get returns one alert.
func (a *Alerts) Get(ctx context.Context, id string) (*Record, error) {
	var r *Record
	err := a.Backend.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, BucketAlerts, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		r, err = decode(it)
		return err
	})
	return r, err
}

// Ack acknowledges an alert (ifMatch: its ETag, or "" for any) and
// records who did, in the same transaction.
func (a *Alerts) Ack(ctx context.Context, id, by, ifMatch string) (*Record, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	var r *Record
	err := a.Backend.Update(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, BucketAlerts, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if r, err = decode(it); err != nil {
			return err
		}
		if ifMatch != "" && ifMatch != it.ETag {
			return store.ErrPreconditionFailed
		}
		before := it.ETag
		r.Status, r.AcknowledgedBy, r.AcknowledgedAt = StatusAcknowledged, by, now().UTC()
		if err := putRecord(ctx, tx, r, store.Condition{IfMatch: it.ETag}); err != nil {
			return err
		}
		return a.Recorder.Record(ctx, tx, audit.Event{Action: "alert.acknowledge", Outcome: audit.OutcomeSuccess, Actor: by,
			Resource: "alert/" + id, ETagBefore: before, ETagAfter: r.ETag, Details: map[string]string{"rule": r.Rule}})
	})
	return r, err
}
