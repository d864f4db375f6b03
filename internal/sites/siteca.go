package sites

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ActionSiteCAIssue is the audit action of a delegated CA's issuance.
const ActionSiteCAIssue = "siteca.issue"

// issuedCA is a stored site CA.
type issuedCA struct {
	Site     string    `json:"site"`
	Gateway  string    `json:"gateway"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
	IssuedAt time.Time `json:"issuedAt"`
	// Chain is site CA, intermediate(s), root (DER).
	Chain [][]byte `json:"chain"`
}

// IssueCA signs a delegated CA for gw's CA key from its DER CSR, stores
// it (leaves the gateway pushes must chain to one of its site CAs) and
// audits the issuance in the same transaction.
func (s *Service) IssueCA(ctx context.Context, gw *Gateway, csrDER []byte) ([][]byte, error) {
	chain, serial, notAfter, err := s.ca.SignSiteCA(csrDER, gw.Site, gw.RegistrationID, s.validity)
	if err != nil {
		return nil, err
	}
	rec := issuedCA{Site: gw.Site, Gateway: gw.RegistrationID, Serial: serial, NotAfter: notAfter, IssuedAt: s.now().UTC(), Chain: chain}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	err = s.st.Backend.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Put(ctx, BucketSiteCAs, enrollment.Key(gw.RegistrationID)+"/"+serial, b, store.Condition{IfNoneMatch: true}); err != nil {
			return err
		}
		return s.rec.Record(ctx, tx, audit.Event{Action: ActionSiteCAIssue, Outcome: audit.OutcomeSuccess, Actor: gw.Actor(),
			Resource: "site/" + gw.Site, RegistrationID: gw.RegistrationID,
			Details: map[string]string{"serial": serial, "notAfter": notAfter.UTC().Format(time.RFC3339), "site": gw.Site}})
	})
	if err != nil {
		return nil, fmt.Errorf("sites: store site CA: %w", err)
	}
	s.log.InfoContext(ctx, "site CA issued", "site", gw.Site, "gateway", gw.RegistrationID, "serial", serial, "not_after", notAfter)
	return chain, nil
}

// siteCAs are the site CAs issued to a gateway, in tx.
func siteCAs(ctx context.Context, tx store.Tx, gateway string) ([]issuedCA, error) {
	items, err := tx.Scan(ctx, BucketSiteCAs, enrollment.Key(gateway)+"/", "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]issuedCA, 0, len(items))
	for _, it := range items {
		var c issuedCA
		if err := json.Unmarshal(it.Value, &c); err != nil {
			return nil, fmt.Errorf("sites: site CA %s: %w", it.Key, err)
		}
		out = append(out, c)
	}
	return out, nil
}
