package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/store"
)

// Sink delivers a batch of events; nil means every one is durably with
// the receiver. It may be called again with the same events.
type Sink interface {
	Deliver(ctx context.Context, events []audit.Sealed) error
	Close() error
}

// Source is the trail the Exporter reads (*audit.Log).
type Source interface {
	List(ctx context.Context, f audit.Filter, after uint64, limit, maxScan int) ([]audit.Sealed, uint64, error)
}

// Config configures an Exporter. Backend, Source, Sink and Name are
// required.
type Config struct {
	Backend store.Backend
	Source  Source
	Sink    Sink
	// Name identifies the sink's cursor and lease; keep it stable across
	// restarts (changing it exports the whole trail again).
	Name string
	// Owner names this replica in the lease; random when empty.
	Owner string
	// Batch is the most events one delivery carries (DefaultBatch).
	Batch int
	// Interval is how often it looks for new events (DefaultInterval).
	Interval time.Duration
	// MaxBackoff caps the wait after failed deliveries (DefaultMaxBackoff).
	MaxBackoff time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Defaults of Config.
const (
	DefaultBatch      = 500
	DefaultInterval   = time.Second
	DefaultMaxBackoff = 30 * time.Second
)

// Exporter moves events from the trail to one sink.
type Exporter struct {
	cfg Config
}

// New validates cfg.
func New(cfg Config) (*Exporter, error) {
	if cfg.Backend == nil || cfg.Source == nil || cfg.Sink == nil || cfg.Name == "" {
		return nil, errors.New("export: Backend, Source, Sink and Name are required")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Owner == "" {
		cfg.Owner = audit.NewID(cfg.Now())[16:]
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{cfg: cfg}, nil
}

// cursorState is the sink's stored position and lease.
type cursorState struct {
	After uint64    `json:"after"`
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

func (e *Exporter) key() string { return "export/" + e.cfg.Name }

// claim takes or renews the lease and returns the cursor; ok is false
// while another replica holds the lease.
func (e *Exporter) claim(ctx context.Context) (after uint64, ok bool, err error) {
	err = e.cfg.Backend.Update(ctx, func(tx store.Tx) error {
		var st cursorState
		it, err := tx.Get(ctx, audit.BucketState, e.key())
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(it.Value, &st); err != nil {
				return fmt.Errorf("export: cursor %s: %w", e.cfg.Name, err)
			}
		}
		now := e.cfg.Now()
		if st.Owner != "" && st.Owner != e.cfg.Owner && st.Until.After(now) {
			ok = false
			return nil
		}
		st.Owner, st.Until = e.cfg.Owner, now.Add(3*e.cfg.Interval+e.cfg.MaxBackoff)
		after, ok = st.After, true
		return putState(ctx, tx, e.key(), &st)
	})
	return after, ok, err
}

func putState(ctx context.Context, tx store.Tx, key string, st *cursorState) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = tx.Put(ctx, audit.BucketState, key, raw, store.Condition{})
	return err
}

// advance stores the cursor after a delivery, unless the lease moved to
// another replica meanwhile (it then redelivers from its own cursor).
func (e *Exporter) advance(ctx context.Context, to uint64) error {
	return e.cfg.Backend.Update(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, audit.BucketState, e.key())
		if err != nil {
			return err
		}
		var st cursorState
		if err := json.Unmarshal(it.Value, &st); err != nil {
			return err
		}
		if st.Owner != e.cfg.Owner || to <= st.After {
			return nil
		}
		st.After = to
		return putState(ctx, tx, e.key(), &st)
	})
}

// Cursor is the last delivered sequence.
func (e *Exporter) Cursor(ctx context.Context) (uint64, error) {
	var st cursorState
	err := e.cfg.Backend.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, audit.BucketState, e.key())
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(it.Value, &st)
	})
	return st.After, err
}

// Once delivers what is there after the cursor, batch by batch, and
// returns how many events it delivered.
func (e *Exporter) Once(ctx context.Context) (int, error) {
	after, ok, err := e.claim(ctx)
	if err != nil || !ok {
		return 0, err
	}
	total := 0
	for {
		evs, _, err := e.cfg.Source.List(ctx, audit.Filter{}, after, e.cfg.Batch, 0)
		if err != nil || len(evs) == 0 {
			return total, err
		}
		if err := e.cfg.Sink.Deliver(ctx, evs); err != nil {
			return total, fmt.Errorf("export %s: deliver after %d: %w", e.cfg.Name, after, err)
		}
		after = evs[len(evs)-1].Seq
		if err := e.advance(ctx, after); err != nil {
			return total, err
		}
		total += len(evs)
		if len(evs) < e.cfg.Batch {
			return total, nil
		}
	}
}

// Run exports until ctx ends, backing off while the sink fails.
func (e *Exporter) Run(ctx context.Context) {
	wait := e.cfg.Interval
	for {
		_, err := e.Once(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			e.cfg.Logger.WarnContext(ctx, "audit export failed; retrying", "sink", e.cfg.Name, "retry_in", wait.String(), "error", err)
			wait = min(2*wait, e.cfg.MaxBackoff)
		default:
			wait = e.cfg.Interval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// line is one event's JSON: its fields plus seq.
func line(s *audit.Sealed) ([]byte, error) {
	raw, err := json.Marshal(&s.AuditEvent)
	if err != nil {
		return nil, err
	}
	// {"seq":N, + the event's fields.
	out := make([]byte, 0, len(raw)+24)
	out = append(out, `{"seq":`...)
	out = strconv.AppendUint(out, s.Seq, 10)
	out = append(out, ',')
	return append(out, raw[1:]...), nil
}
