package sites

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ActionSiteCAIssue is the audit action of a delegated CA's issuance.
const ActionSiteCAIssue = "siteca.issue"

// issuedCA is a stored site CA.
type issuedCA struct {
	Site    string `json:"site"`
	Gateway string `json:"gateway"`
	// Group is the gateway's group when a group makes it a gateway.
	Group    string    `json:"group,omitempty"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
	IssuedAt time.Time `json:"issuedAt"`
	// Chain is site CA, intermediate(s), root (DER).
	Chain [][]byte `json:"chain"`
	// RevokedAt is set when the gateway lost its right (revokeSiteCAs).
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// IssueCA signs a delegated CA for gw's CA key from its DER CSR, stores
// it (leaves the gateway pushes must chain to one of its site CAs) and
// audits the issuance in the same transaction.
func (s *Service) IssueCA(ctx context.Context, gw *Gateway, csrDER []byte) ([][]byte, error) {
	chain, serial, notAfter, err := s.ca.SignSiteCA(csrDER, gw.Site, gw.RegistrationID, s.validity)
	if err != nil {
		return nil, err
	}
	rec := issuedCA{Site: gw.Site, Gateway: gw.RegistrationID, Group: gw.Group, Serial: serial, NotAfter: notAfter, IssuedAt: s.now().UTC(), Chain: chain}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	err = s.st.Backend.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Put(ctx, BucketSiteCAs, enrollment.Key(gw.RegistrationID)+"/"+serial, b, store.Condition{IfNoneMatch: true}); err != nil {
			return err
		}
		// The gateway's own enrollment leaves the site's feed: other
		// gateways of the site must not hold its credentials.
		kind, id := gatewayEnrollment(&rec)
		if err := Append(ctx, tx, gw.Site, kind, id, dps.ChangeDelete); err != nil {
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

// reasonPrivilegeWithdrawn is the CRL reason of a site CA whose gateway
// lost its right.
const reasonPrivilegeWithdrawn = 9

// revokeSiteCAs revokes, inside tx, every unrevoked site CA that match
// selects and stores it revoked among the issued certificates, so that
// central's CRL (signed by the intermediate that issued it) lists it and
// hubs checking it refuse every leaf the gateway issued under it.
func revokeSiteCAs(ctx context.Context, tx store.Tx, match func(*issuedCA) bool) error {
	items, err := tx.Scan(ctx, BucketSiteCAs, "", "", 0)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, it := range items {
		var c issuedCA
		if err := json.Unmarshal(it.Value, &c); err != nil {
			return fmt.Errorf("sites: site CA %s: %w", it.Key, err)
		}
		if c.RevokedAt != nil || !match(&c) || len(c.Chain) == 0 {
			continue
		}
		cert, err := x509.ParseCertificate(c.Chain[0])
		if err != nil {
			return fmt.Errorf("sites: site CA %s: %w", it.Key, err)
		}
		c.RevokedAt = &now
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if _, err := tx.Put(ctx, BucketSiteCAs, it.Key, b, store.Condition{IfMatch: it.ETag}); err != nil {
			return err
		}
		if err := revocation.StoreRevokedTx(ctx, tx, &enrollment.Certificate{Serial: c.Serial, RegistrationID: c.Gateway, DeviceID: c.Gateway,
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Chain: c.Chain, RevokedAt: &now, RevocationReason: reasonPrivilegeWithdrawn}); err != nil {
			return err
		}
	}
	return nil
}
