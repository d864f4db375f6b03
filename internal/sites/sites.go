package sites

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Site reads a site with its gateways' last reports.
func (s *Service) Site(ctx context.Context, name string) (*enrollment.Site, error) {
	if err := enrollment.ValidateSiteName(name); err != nil {
		return nil, err
	}
	st, err := s.sites.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return st, s.withGateways(ctx, []*enrollment.Site{st})
}

// ListSites reads one page of sites with their gateways' reports.
func (s *Service) ListSites(ctx context.Context, cont string, limit int) ([]*enrollment.Site, string, error) {
	out, next, err := s.sites.List(ctx, cont, limit)
	if err != nil {
		return nil, "", err
	}
	return out, next, s.withGateways(ctx, out)
}

// PutSite creates or replaces a site under cond; created reports which.
func (s *Service) PutSite(ctx context.Context, st *enrollment.Site, cond store.Condition) (bool, error) {
	if err := st.Validate(); err != nil {
		return false, err
	}
	st.Gateways = nil
	return s.sites.Put(ctx, st, cond)
}

// DeleteSite deletes a site. Its gateways are refused from then on (their
// enrollments name a site that does not exist); the enrollments keep
// their site field until reassigned.
func (s *Service) DeleteSite(ctx context.Context, name, ifMatch string) error {
	return s.sites.Delete(ctx, name, store.Condition{IfMatch: ifMatch})
}

// gatewayState is a gateway's last report, stored under its key.
type gatewayState struct {
	Site string `json:"site"`
	enrollment.SiteGateway
}

func (s *Service) withGateways(ctx context.Context, sites []*enrollment.Site) error {
	if len(sites) == 0 {
		return nil
	}
	by := map[string]*enrollment.Site{}
	for _, st := range sites {
		st.Gateways = []enrollment.SiteGateway{}
		by[st.Name] = st
	}
	return s.st.Backend.View(ctx, func(tx store.Tx) error {
		items, err := tx.Scan(ctx, BucketGateways, "", "", 0)
		if err != nil {
			return err
		}
		for _, it := range items {
			var g gatewayState
			if err := json.Unmarshal(it.Value, &g); err != nil {
				return fmt.Errorf("sites: gateway %s: %w", it.Key, err)
			}
			if st := by[g.Site]; st != nil {
				st.Gateways = append(st.Gateways, g.SiteGateway)
			}
		}
		return nil
	})
}

// MaxBacklog bounds the backlog a gateway may report.
const MaxBacklog = 1 << 40

// ReportStatus stores gw's status report.
func (s *Service) ReportStatus(ctx context.Context, gw *Gateway, st *dps.GatewayStatus) error {
	if st.Backlog < 0 || st.Backlog > MaxBacklog || len(st.CASerial) > 64 {
		return invalid("backlog must be 0 or more and caSerial at most 64 characters")
	}
	now := s.now().UTC()
	g := gatewayState{Site: gw.Site, SiteGateway: enrollment.SiteGateway{
		RegistrationID: gw.RegistrationID, LastSync: utc(st.LastSync), Backlog: st.Backlog,
		CANotAfter: utc(st.CANotAfter), CASerial: st.CASerial, ReportedAt: &now,
	}}
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return s.st.Backend.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, BucketGateways, enrollment.Key(gw.RegistrationID), b, store.Condition{})
		return err
	})
}

func utc(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
