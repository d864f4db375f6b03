package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Buckets of this package.
const (
	// BucketSites holds enrollment.Site by name.
	BucketSites store.Bucket = "sites"
	// BucketFeed holds the feed entries: key "<site>/<seq, 16 hex digits>".
	BucketFeed store.Bucket = "site-feed"
	// BucketFeedHead holds each site's last sequence number: key "<site>".
	BucketFeedHead store.Bucket = "site-feed-head"
	// BucketGateways holds each gateway's last status: key its
	// registration ID (store key form).
	BucketGateways store.Bucket = "site-gateways"
	// BucketSiteCAs holds the site CAs issued: key
	// "<gateway registration key>/<serial>".
	BucketSiteCAs store.Bucket = "site-cas"
	// BucketAuditSeen holds the IDs of the gateway audit events recorded:
	// key "<gateway registration key>/<event id>".
	BucketAuditSeen store.Bucket = "site-audit-seen"
)

// entry is one stored feed entry. The document is not stored: Pull reads
// the current one, so a key never sits in the feed and an entry
// superseded by a later one (a delete, a move away) is skipped.
type entry struct {
	Kind string `json:"k"`
	ID   string `json:"i"`
	Op   string `json:"o"`
	// At is when the entry was appended, for retention.
	At time.Time `json:"t"`
}

type head struct {
	Seq uint64 `json:"seq"`
	// Pruned is the last sequence number retention deleted: a cursor
	// before it has missed changes and must start a new snapshot.
	Pruned uint64 `json:"pruned,omitempty"`
}

func feedKey(site string, seq uint64) string { return site + "/" + fmt.Sprintf("%016x", seq) }

func seqOf(key string) (uint64, error) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return 0, fmt.Errorf("sites: feed key %q", key)
	}
	return strconv.ParseUint(key[i+1:], 16, 64)
}

// Append adds a change for site to its feed inside tx, after every change
// committed before. It reads and writes the site's head, so concurrent
// appends to one site serialize on it (on PostgreSQL through SERIALIZABLE).
func Append(ctx context.Context, tx store.Tx, site, kind, id, op string) error {
	if site == "" {
		return nil
	}
	var h head
	it, err := tx.Get(ctx, BucketFeedHead, site)
	switch {
	case err == nil:
		if err := json.Unmarshal(it.Value, &h); err != nil {
			return fmt.Errorf("sites: feed head of %q: %w", site, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	h.Seq++
	b, _ := json.Marshal(h)
	if _, err := tx.Put(ctx, BucketFeedHead, site, b, store.Condition{}); err != nil {
		return err
	}
	e, _ := json.Marshal(entry{Kind: kind, ID: id, Op: op, At: time.Now().UTC()})
	_, err = tx.Put(ctx, BucketFeed, feedKey(site, h.Seq), e, store.Condition{IfNoneMatch: true})
	return err
}

// headOf is the head of site's feed (zero when empty).
func headOf(ctx context.Context, tx store.Tx, site string) (head, error) {
	it, err := tx.Get(ctx, BucketFeedHead, site)
	if errors.Is(err, store.ErrNotFound) {
		return head{}, nil
	}
	if err != nil {
		return head{}, err
	}
	var h head
	if err := json.Unmarshal(it.Value, &h); err != nil {
		return head{}, fmt.Errorf("sites: feed head of %q: %w", site, err)
	}
	return h, nil
}

// Feed wraps a backend so that every write to an enrollment, a group or a
// site, and every deletion of a registration record, appends the changes
// it makes to the feeds of the sites concerned, in the same transaction:
// a use case added later feeds the gateways without remembering to. Only
// the non-secret members of the stored values are read (site, IDs), which
// the store never seals.
func Feed(b store.Backend) store.Backend { return &feed{Backend: b} }

type feed struct{ store.Backend }

// Unwrap is the wrapped backend, for its optional capabilities.
func (f *feed) Unwrap() store.Backend { return f.Backend }

func (f *feed) Update(ctx context.Context, fn func(store.Tx) error) error {
	return f.Backend.Update(ctx, func(tx store.Tx) error { return fn(&feedTx{Tx: tx}) })
}

type feedTx struct{ store.Tx }

// fedKinds are the buckets whose documents flow down.
var fedKinds = map[store.Bucket]string{
	store.BucketEnrollments: dps.ChangeEnrollment,
	store.BucketGroups:      dps.ChangeGroup,
	BucketSites:             dps.ChangeSite,
}

// placed is what the feed reads of a stored document.
type placed struct {
	Site              string `json:"site"`
	Name              string `json:"name"`
	RegistrationID    string `json:"registrationId"`
	EnrollmentGroupID string `json:"enrollmentGroupId"`
	Gateway           string `json:"gateway"`
	Capabilities      *struct {
		IoTEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
	ProvisioningStatus string `json:"provisioningStatus"`
}

// gatewayOf is the site an enrollment or group makes its devices
// gateways of ("" for none): iotEdge, a site, enabled.
func (p placed) gatewayOf() string {
	if p.Capabilities == nil || !p.Capabilities.IoTEdge || p.ProvisioningStatus == enrollment.StatusDisabled {
		return ""
	}
	return p.Site
}

// siteCAsOf selects the site CAs an enrollment or group made gateways get.
func siteCAsOf(kind, id string) func(*issuedCA) bool {
	if kind == dps.ChangeGroup {
		return func(c *issuedCA) bool { return c.Group != "" && enrollment.Key(c.Group) == enrollment.Key(id) }
	}
	return func(c *issuedCA) bool { return c.Group == "" && enrollment.Key(c.Gateway) == enrollment.Key(id) }
}

func (p placed) id(kind string) string {
	switch kind {
	case dps.ChangeEnrollment, dps.ChangeRegistration:
		return p.RegistrationID
	case dps.ChangeGroup:
		return p.EnrollmentGroupID
	}
	return p.Name
}

// siteOf is the site a stored document belongs to: a site is its own.
func (p placed) siteOf(kind string) string {
	if kind == dps.ChangeSite {
		return p.Name
	}
	return p.Site
}

func (t *feedTx) read(ctx context.Context, b store.Bucket, key string) (placed, bool, error) {
	it, err := t.Tx.Get(ctx, b, key)
	if errors.Is(err, store.ErrNotFound) {
		return placed{}, false, nil
	}
	if err != nil {
		return placed{}, false, err
	}
	var p placed
	if err := json.Unmarshal(it.Value, &p); err != nil {
		return placed{}, false, fmt.Errorf("sites: read %s/%s: %w", b, key, err)
	}
	return p, true, nil
}

func (t *feedTx) Put(ctx context.Context, b store.Bucket, key string, value []byte, cond store.Condition) (string, error) {
	kind, ok := fedKinds[b]
	if !ok {
		return t.Tx.Put(ctx, b, key, value, cond)
	}
	old, existed, err := t.read(ctx, b, key)
	if err != nil {
		return "", err
	}
	etag, err := t.Tx.Put(ctx, b, key, value, cond)
	if err != nil {
		return "", err
	}
	var now placed
	if err := json.Unmarshal(value, &now); err != nil {
		return "", fmt.Errorf("sites: read %s/%s: %w", b, key, err)
	}
	// A gateway's enrollment that stops making it one (disabled, off
	// its site, no iotEdge) withdraws its delegated CAs.
	if existed && kind != dps.ChangeSite && old.gatewayOf() != "" && old.gatewayOf() != now.gatewayOf() {
		if err := revokeSiteCAs(ctx, t.Tx, siteCAsOf(kind, old.id(kind))); err != nil {
			return "", err
		}
	}
	was, is := old.siteOf(kind), now.siteOf(kind)
	if existed && was != "" && was != is {
		// Moved away: for the old site it is gone.
		if err := Append(ctx, t.Tx, was, kind, old.id(kind), dps.ChangeDelete); err != nil {
			return "", err
		}
	}
	if err := Append(ctx, t.Tx, is, kind, now.id(kind), dps.ChangeUpsert); err != nil {
		return "", err
	}
	return etag, nil
}

func (t *feedTx) Delete(ctx context.Context, b store.Bucket, key string, cond store.Condition) error {
	kind, fed := fedKinds[b]
	if !fed && b != store.BucketRegistrations {
		return t.Tx.Delete(ctx, b, key, cond)
	}
	old, existed, err := t.read(ctx, b, key)
	if err != nil {
		return err
	}
	if err := t.Tx.Delete(ctx, b, key, cond); err != nil || !existed {
		return err
	}
	if fed {
		var withdraw func(*issuedCA) bool
		switch {
		case kind == dps.ChangeSite:
			withdraw = func(c *issuedCA) bool { return c.Site == old.Name }
		case old.gatewayOf() != "":
			withdraw = siteCAsOf(kind, old.id(kind))
		}
		if withdraw != nil {
			if err := revokeSiteCAs(ctx, t.Tx, withdraw); err != nil {
				return err
			}
		}
		return Append(ctx, t.Tx, old.siteOf(kind), kind, old.id(kind), dps.ChangeDelete)
	}
	// A gateway's record gone: its delegated CAs with it.
	if err := revokeSiteCAs(ctx, t.Tx, func(c *issuedCA) bool { return enrollment.Key(c.Gateway) == enrollment.Key(old.RegistrationID) }); err != nil {
		return err
	}
	site, err := t.registrationSite(ctx, old)
	if err != nil {
		return err
	}
	return Append(ctx, t.Tx, site, dps.ChangeRegistration, old.RegistrationID, dps.ChangeDelete)
}

// registrationSite is the site whose gateways must forget a deleted
// record: the record's own (it came from a gateway), else its
// enrollment's (individual, else group).
func (t *feedTx) registrationSite(ctx context.Context, rec placed) (string, error) {
	if rec.Site != "" {
		return rec.Site, nil
	}
	if e, ok, err := t.read(ctx, store.BucketEnrollments, enrollment.Key(rec.RegistrationID)); err != nil || ok {
		return e.Site, err
	}
	if rec.EnrollmentGroupID == "" {
		return "", nil
	}
	g, _, err := t.read(ctx, store.BucketGroups, enrollment.Key(rec.EnrollmentGroupID))
	return g.Site, err
}
