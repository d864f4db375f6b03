package sites

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// MaxEventsPerPush bounds one push of audit events.
const MaxEventsPerPush = 500

// maxEventDetails leaves room for the details ingest adds within the
// trail's bound of 32.
const maxEventDetails = 28

// IngestAudit records the audit events gw pushes in central's trail, in
// one transaction, each at most once by its ID at the gateway. Each is
// recorded as the gateway's (actor gateway:<registration ID>), with its
// time at the gateway and its own actor and ID in its details
// (gatewayActor, gatewayEventId) and the site.
func (s *Service) IngestAudit(ctx context.Context, gw *Gateway, evs []dps.AuditEvent) (*dps.GatewayAuditResult, error) {
	if len(evs) > MaxEventsPerPush {
		return nil, invalid("at most %d events per push, not %d", MaxEventsPerPush, len(evs))
	}
	now := s.now()
	for i := range evs {
		e := &evs[i]
		switch {
		case !validEventID(e.ID):
			return nil, invalid("events[%d].id must be 1 to 64 letters, digits, '-' or '_'", i)
		case e.Action == "" || e.Outcome == "" || e.Actor == "":
			return nil, invalid("events[%d]: action, outcome and actor are required", i)
		case len(e.Details) > maxEventDetails:
			return nil, invalid("events[%d]: at most %d details", i, maxEventDetails)
		case e.Time.IsZero() || e.Time.After(now.Add(time.Hour)):
			return nil, invalid("events[%d].time is required and not in the future", i)
		}
	}
	res := &dps.GatewayAuditResult{}
	prefix := enrollment.Key(gw.RegistrationID) + "/"
	seen, _ := json.Marshal(stamp{At: now.UTC()})
	err := s.st.Backend.Update(ctx, func(tx store.Tx) error {
		*res = dps.GatewayAuditResult{}
		for _, in := range evs {
			_, err := tx.Get(ctx, BucketAuditSeen, prefix+in.ID)
			if err == nil {
				res.Duplicates++
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if _, err := tx.Put(ctx, BucketAuditSeen, prefix+in.ID, seen, store.Condition{IfNoneMatch: true}); err != nil {
				return err
			}
			e := in
			e.Details = maps.Clone(in.Details)
			if e.Details == nil {
				e.Details = map[string]string{}
			}
			e.Details["gatewayActor"], e.Details["gatewayEventId"], e.Details["site"] = in.Actor, in.ID, gw.Site
			e.ID, e.Actor = "", gw.Actor()
			if err := s.rec.Record(ctx, tx, e); err != nil {
				if errors.Is(err, audit.ErrInvalid) {
					return invalid("event %s: %v", in.ID, err)
				}
				return err
			}
			res.Recorded++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func validEventID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
