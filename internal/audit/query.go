package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/zdps/zdps/pkg/dps"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/store"
)

// Filter selects events; zero fields select everything.
type Filter struct {
	Since, Until time.Time
	// Action matches the action exactly, or a prefix ending in "."
	// ("registration." matches every registration action).
	Action         string
	RegistrationID string
	Outcome        string
}

func (f *Filter) match(e *Event) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.Outcome != "" && !strings.EqualFold(f.Outcome, e.Outcome):
		return false
	case f.RegistrationID != "" && !strings.EqualFold(f.RegistrationID, e.RegistrationID):
		return false
	case f.Action != "" && e.Action != f.Action && !(strings.HasSuffix(f.Action, ".") && strings.HasPrefix(e.Action, f.Action)):
		return false
	}
	return true
}

// Sealed is a chained event with its sequence number.
type Sealed = dps.SealedAuditEvent

// listScan bounds one read transaction of List.
const listScan = 1000

// List returns up to limit chained events after sequence after that match
// f, in sequence order, and the sequence to continue after (the last one
// scanned; equal to after when there was nothing more). It scans at most
// maxScan entries (0: no bound), so a filter that matches little cannot
// hold a request for the whole trail.
func (l *Log) List(ctx context.Context, f Filter, after uint64, limit, maxScan int) ([]Sealed, uint64, error) {
	var out []Sealed
	next, scanned := after, 0
	for limit <= 0 || len(out) < limit {
		var page []store.Item
		if err := l.b.View(ctx, func(tx store.Tx) error {
			var err error
			page, err = tx.Scan(ctx, BucketChain, "", seqKey(next), listScan)
			return err
		}); err != nil {
			return nil, after, err
		}
		for _, it := range page {
			var en Entry
			var ev Event
			if err := json.Unmarshal(it.Value, &en); err != nil {
				return nil, after, fmt.Errorf("audit: entry %s: %w", it.Key, err)
			}
			if err := json.Unmarshal(en.Event, &ev); err != nil {
				return nil, after, fmt.Errorf("audit: event of entry %s: %w", it.Key, err)
			}
			seq, _ := strconv.ParseUint(it.Key, 10, 64)
			next = seq
			scanned++
			if f.match(&ev) {
				out = append(out, Sealed{Seq: seq, AuditEvent: ev})
				if limit > 0 && len(out) == limit {
					return out, next, nil
				}
			}
			if maxScan > 0 && scanned >= maxScan {
				return out, next, nil
			}
		}
		if len(page) < listScan {
			break
		}
	}
	return out, next, nil
}

// Head is the last chained sequence number (0 when nothing is chained).
func (l *Log) Head(ctx context.Context) (uint64, error) {
	var h *signedPoint
	err := l.b.View(ctx, func(tx store.Tx) error {
		var err error
		h, err = l.headIn(ctx, tx)
		return err
	})
	if err != nil {
		return 0, err
	}
	return h.Seq, nil
}

// pruneBatch bounds one pruning transaction.
const pruneBatch = 1000

// Prune deletes the chained events older than before, oldest first, and
// leaves a signed checkpoint at the cut, so Verify still proves the rest.
// Each batch records an audit.checkpoint event of its own. It returns how
// many events it deleted.
func (l *Log) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n, err := l.pruneOnce(ctx, before)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

func (l *Log) pruneOnce(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := l.b.Update(ctx, func(tx store.Tx) error {
		n = 0
		items, err := tx.Scan(ctx, BucketChain, "", "", pruneBatch)
		if err != nil {
			return err
		}
		var cut *Entry
		for _, it := range items {
			var en Entry
			var ev struct {
				Time time.Time `json:"time"`
			}
			if err := json.Unmarshal(it.Value, &en); err != nil {
				return fmt.Errorf("audit: entry %s: %w", it.Key, err)
			}
			if err := json.Unmarshal(en.Event, &ev); err != nil {
				return fmt.Errorf("audit: event of entry %s: %w", it.Key, err)
			}
			if !ev.Time.Before(before) {
				break
			}
			if err := tx.Delete(ctx, BucketChain, it.Key, store.Condition{}); err != nil {
				return err
			}
			cut, n = &en, n+1
		}
		if cut == nil {
			return nil
		}
		cp := &signedPoint{Seq: cut.Seq, Hash: cut.Hash, Time: l.now().UTC()}
		if err := l.sign("checkpoint", cp); err != nil {
			return err
		}
		if err := putJSON(ctx, tx, BucketState, keyCheckpoint, cp); err != nil {
			return err
		}
		return l.Record(ctx, tx, Event{Action: ActionCheckpoint, Outcome: OutcomeSuccess, Actor: "retention",
			Details: map[string]string{"pruned": strconv.Itoa(n), "checkpointSeq": strconv.FormatUint(cut.Seq, 10), "before": before.UTC().Format(time.RFC3339)}})
	})
	return n, err
}
