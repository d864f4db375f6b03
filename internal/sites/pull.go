package sites

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/gatewaykey"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/check"
)

// Limits of one page of the feed.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// maxScan bounds the documents one snapshot page reads looking for
	// the site's (the page answers more=true and the cursor goes on).
	maxScan = 5000
	// MaxCursorLength bounds a cursor a gateway sends back.
	MaxCursorLength = 2048
)

// Phases of a cursor: the snapshot (the site, its enrollments, its
// groups), then the feed.
const (
	phaseSite        = "site"
	phaseEnrollments = "enrollments"
	phaseGroups      = "groups"
	phaseFeed        = "feed"
)

// ErrCursor: the cursor is not one this zdps gave the gateway's site, or
// it is older than the feed's retention (a gateway offline for longer);
// either way the gateway starts again with an empty cursor (a snapshot).
var ErrCursor = fmt.Errorf("%w: invalid or expired cursor (start again with an empty one)", enrollment.ErrInvalid)

// cursor is where a gateway is in its site's feed. During the snapshot
// Seq is the feed's head when the snapshot began: the feed is replayed
// from there, so a change made during the snapshot is seen at least once.
type cursor struct {
	V     int    `json:"v"`
	Site  string `json:"site"`
	Phase string `json:"p"`
	After string `json:"a,omitempty"`
	Seq   uint64 `json:"s"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor of site; "" is the start of a snapshot.
func DecodeCursor(s, site string) (cursor, bool, error) {
	if s == "" {
		return cursor{V: 1, Site: site, Phase: phaseSite}, true, nil
	}
	if len(s) > MaxCursorLength {
		return cursor{}, false, ErrCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false, ErrCursor
	}
	var c cursor
	if err := check.StrictUnmarshal(b, &c); err != nil {
		return cursor{}, false, ErrCursor
	}
	if c.V != 1 || c.Site != site || len(c.After) > 1024 {
		return cursor{}, false, ErrCursor
	}
	switch c.Phase {
	case phaseSite, phaseEnrollments, phaseGroups, phaseFeed:
	default:
		return cursor{}, false, ErrCursor
	}
	return c, false, nil
}

// Pull is one page of site's changes after cur for the gateway whose key
// is to, read in one transaction.
func (s *Service) Pull(ctx context.Context, gw *Gateway, cur string, limit int) (*dps.ChangesPage, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	if limit > MaxPageSize {
		limit = MaxPageSize
	}
	c, fresh, err := DecodeCursor(cur, gw.Site)
	if err != nil {
		return nil, err
	}
	to, err := gatewaykey.NewRecipient(gw.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	page := &dps.ChangesPage{Changes: []dps.Change{}}
	err = s.st.Backend.View(ctx, func(tx store.Tx) error {
		page.Changes = page.Changes[:0]
		c := c
		h, err := headOf(ctx, tx, gw.Site)
		if err != nil {
			return err
		}
		switch {
		case fresh:
			c.Seq = h.Seq
		case c.Seq < h.Pruned:
			return ErrCursor // retention deleted changes it has not seen
		case c.Seq > h.Seq:
			return ErrCursor // not this store's (a restore from before it)
		}
		gws, err := gatewayEnrollments(ctx, tx)
		if err != nil {
			return err
		}
		more, err := s.fill(ctx, tx, &c, limit, pulling{to: to, gateways: gws}, page)
		if err != nil {
			return err
		}
		page.Cursor, page.More = c.encode(), more
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// fill appends up to limit changes to page from c on, moving c, and
// reports whether more may be ready.
func (s *Service) fill(ctx context.Context, tx store.Tx, c *cursor, limit int, to pulling, page *dps.ChangesPage) (bool, error) {
	scanned := 0
	for len(page.Changes) < limit {
		switch c.Phase {
		case phaseSite:
			ch, ok, err := s.change(ctx, tx, to, c.Site, dps.ChangeSite, c.Site, 0)
			if err != nil {
				return false, err
			}
			if ok {
				page.Changes = append(page.Changes, ch)
			}
			c.Phase, c.After = phaseEnrollments, ""
		case phaseEnrollments, phaseGroups:
			b, kind, next := store.BucketEnrollments, dps.ChangeEnrollment, phaseGroups
			if c.Phase == phaseGroups {
				b, kind, next = store.BucketGroups, dps.ChangeGroup, phaseFeed
			}
			if scanned >= maxScan {
				return true, nil
			}
			items, err := tx.Scan(ctx, b, "", c.After, min(500, maxScan-scanned))
			if err != nil {
				return false, err
			}
			if len(items) == 0 {
				c.Phase, c.After = next, ""
				continue
			}
			for _, it := range items {
				scanned++
				var p placed
				if err := json.Unmarshal(it.Value, &p); err != nil {
					return false, fmt.Errorf("sites: read %s/%s: %w", b, it.Key, err)
				}
				if p.Site == c.Site {
					ch, ok, err := s.change(ctx, tx, to, c.Site, kind, p.id(kind), 0)
					if err != nil {
						return false, err
					}
					if ok {
						page.Changes = append(page.Changes, ch)
					}
				}
				c.After = it.Key
				if len(page.Changes) >= limit {
					return true, nil
				}
			}
		case phaseFeed:
			want := limit - len(page.Changes)
			items, err := tx.Scan(ctx, BucketFeed, c.Site+"/", feedKey(c.Site, c.Seq), want+1)
			if err != nil {
				return false, err
			}
			for i, it := range items {
				if i == want {
					return true, nil
				}
				seq, err := seqOf(it.Key)
				if err != nil {
					return false, err
				}
				var e entry
				if err := json.Unmarshal(it.Value, &e); err != nil {
					return false, fmt.Errorf("sites: feed entry %s: %w", it.Key, err)
				}
				c.Seq = seq
				if e.Op == dps.ChangeDelete {
					page.Changes = append(page.Changes, dps.Change{Seq: seq, Kind: e.Kind, ID: e.ID, Op: dps.ChangeDelete})
					continue
				}
				ch, ok, err := s.change(ctx, tx, to, c.Site, e.Kind, e.ID, seq)
				if err != nil {
					return false, err
				}
				if ok {
					page.Changes = append(page.Changes, ch)
				}
			}
			return false, nil
		default:
			return false, ErrCursor
		}
	}
	return true, nil
}

// change is the upsert of the current document of kind and id if it
// still belongs to site; ok false when it is gone or moved away (a later
// entry of the feed says so).
func (s *Service) change(ctx context.Context, tx store.Tx, to pulling, site, kind, id string, seq uint64) (dps.Change, bool, error) {
	if to.gateways[kind+"/"+enrollment.Key(id)] {
		return dps.Change{}, false, nil // a gateway's: never sent (IssueCA fed its delete)
	}
	var doc any
	var docSite, docID string
	var err error
	switch kind {
	case dps.ChangeEnrollment:
		var e *enrollment.IndividualEnrollment
		if e, err = s.st.Enrollments.In(tx).Get(ctx, id); err == nil {
			e.RegistrationState = nil
			doc, docSite, docID = e, e.Site, e.RegistrationID
		}
	case dps.ChangeGroup:
		var g *enrollment.EnrollmentGroup
		if g, err = s.st.Groups.In(tx).Get(ctx, id); err == nil {
			doc, docSite, docID = g, g.Site, g.EnrollmentGroupID
		}
	case dps.ChangeSite:
		var st *enrollment.Site
		if st, err = s.sites.In(tx).Get(ctx, id); err == nil {
			doc, docSite, docID = st, st.Name, st.Name
		}
	default:
		return dps.Change{}, false, nil
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && docSite != site) {
		return dps.Change{}, false, nil
	}
	if err != nil {
		return dps.Change{}, false, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return dps.Change{}, false, err
	}
	if kind != dps.ChangeSite {
		if b, err = to.to.SealDocument(b, kind, docID); err != nil {
			return dps.Change{}, false, err
		}
	}
	return dps.Change{Seq: seq, Kind: kind, ID: docID, Op: dps.ChangeUpsert, Document: b}, true, nil
}

// pulling is what serving one page needs besides the cursor: the key to
// seal to, and the enrollments and groups that made gateways.
type pulling struct {
	to       *gatewaykey.Recipient
	gateways map[string]bool
}

// gatewayEnrollments are the enrollments and groups that made gateways
// (a site CA was issued through them), "<kind>/<key>": their keys are
// the gateways' own credentials at central, never sent to a gateway, so
// a gateway cannot register as another.
func gatewayEnrollments(ctx context.Context, tx store.Tx) (map[string]bool, error) {
	items, err := tx.Scan(ctx, BucketSiteCAs, "", "", 0)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, it := range items {
		var c issuedCA
		if err := json.Unmarshal(it.Value, &c); err != nil {
			return nil, fmt.Errorf("sites: site CA %s: %w", it.Key, err)
		}
		kind, id := gatewayEnrollment(&c)
		out[kind+"/"+enrollment.Key(id)] = true
	}
	return out, nil
}

// gatewayEnrollment is the enrollment or group that made c's gateway.
func gatewayEnrollment(c *issuedCA) (kind, id string) {
	if c.Group != "" {
		return dps.ChangeGroup, c.Group
	}
	return dps.ChangeEnrollment, c.Gateway
}
