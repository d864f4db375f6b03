package gateway

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/gatewaykey"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// DefaultInterval is the time between two syncs.
const DefaultInterval = 30 * time.Second

// Batch sizes: a page of the feed, a push of records or of events.
const (
	pageSize    = 500
	recordBatch = 100 // central's most records per push
	auditBatch  = 500
	// parallelPushes pushes run at once: central stores each record in
	// its own transaction, which its store groups when they run together.
	parallelPushes = 4
)

// offlineProbe is how soon a sync follows one that found central
// unreachable: the backlog goes up as soon as the link is back, not up to
// an interval later.
const offlineProbe = time.Second

// Docs are the management use cases of one kind of enrollment document
// the feed writes through (manage.Docs): central's version replaces the
// local one unconditionally.
type Docs[T any] interface {
	Put(ctx context.Context, v T, cond store.Condition) (created bool, err error)
	Delete(ctx context.Context, id, ifMatch string) error
}

// Resources are the other management use cases the feed needs.
type Resources interface {
	DeleteRegistration(ctx context.Context, id, ifMatch string) error
	PutHub(ctx context.Context, h *enrollment.Hub, cond store.Condition) (created bool, err error)
}

// AuditSource is the sealed trail (*audit.Log).
type AuditSource interface {
	List(ctx context.Context, f audit.Filter, after uint64, limit, maxScan int) ([]audit.Sealed, uint64, error)
}

// Upstream is central's gateway API (*Client).
type Upstream interface {
	Changes(ctx context.Context, cursor string, limit int) (*dps.ChangesPage, error)
	PushRecords(ctx context.Context, recs []dps.GatewayRecord) ([]dps.GatewayRecordResult, error)
	PushAudit(ctx context.Context, evs []dps.AuditEvent) (*dps.GatewayAuditResult, error)
	Status(ctx context.Context, s dps.GatewayStatus) error
}

// Config configures a Syncer. All but Logger, Now and Interval are
// required.
type Config struct {
	Upstream Upstream
	// Store is the gateway's store (its backend wrapped by Outbox).
	Store       *store.Store
	Enrollments Docs[*enrollment.IndividualEnrollment]
	Groups      Docs[*enrollment.EnrollmentGroup]
	Resources   Resources
	Audit       AuditSource
	// Opener opens the keys sealed to the gateway's current TLS client key.
	Opener func() *gatewaykey.Opener
	// CA is the delegated CA's certificate now (for the status report).
	CA       func() *x509.Certificate
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Syncer keeps a gateway in step with central. Sync may be called from
// several goroutines; runs are serialized.
type Syncer struct {
	cfg   Config
	certs *store.Collection[*enrollment.Certificate]
	mu    sync.Mutex
}

// New checks cfg and returns its Syncer.
func New(cfg Config) (*Syncer, error) {
	if cfg.Upstream == nil || cfg.Store == nil || cfg.Enrollments == nil || cfg.Groups == nil || cfg.Resources == nil || cfg.Audit == nil || cfg.Opener == nil || cfg.CA == nil {
		return nil, errors.New("gateway: Upstream, Store, Enrollments, Groups, Resources, Audit, Opener and CA are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Syncer{cfg: cfg, certs: revocation.Certificates(cfg.Store.Backend, cfg.Now)}, nil
}

// Report is what one sync did.
type Report struct {
	Applied, Skipped int // changes of the feed
	Pushed           int // records answered by central
	Conflicts        int
	Events           int // audit events pushed
	Backlog          int // records still to push
}

// Run syncs at once and then every interval until ctx ends. A failed
// sync is logged and retried at the next interval, or, when central was
// unreachable, within offlineProbe.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := s.cfg.Interval
		rep, err := s.Sync(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrUnreachable):
			next = min(next, offlineProbe)
			s.cfg.Logger.DebugContext(ctx, "gateway sync: central unreachable; working offline", "backlog", rep.Backlog, "error", err)
		case err != nil:
			s.cfg.Logger.WarnContext(ctx, "gateway sync failed", "error", err)
		default:
			s.cfg.Logger.InfoContext(ctx, "gateway sync", "applied", rep.Applied, "skipped", rep.Skipped, "pushed", rep.Pushed,
				"conflicts", rep.Conflicts, "events", rep.Events, "backlog", rep.Backlog)
		}
		t.Reset(next)
	}
}

// Sync runs one sync: pull and apply the feed, push records and audit
// events, report status. It stops at the first failure; what it did
// before stays done (each step stores its cursor).
func (s *Syncer) Sync(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep Report
	err := s.pull(ctx, &rep)
	if err == nil {
		err = s.pushRecords(ctx, &rep)
	}
	if err == nil {
		err = s.pushAudit(ctx, &rep)
	}
	backlog, berr := Backlog(ctx, s.cfg.Store.Backend)
	rep.Backlog = backlog
	if err != nil {
		return rep, err
	}
	if berr != nil {
		return rep, berr
	}
	now := s.cfg.Now().UTC()
	st := dps.GatewayStatus{LastSync: &now, Backlog: backlog}
	if c := s.cfg.CA(); c != nil {
		na := c.NotAfter.UTC()
		st.CANotAfter, st.CASerial = &na, fmt.Sprintf("%032x", c.SerialNumber)
	}
	return rep, s.cfg.Upstream.Status(ctx, st)
}

// cursor reads a stored cursor ("" when none).
func (s *Syncer) cursor(ctx context.Context, name string) (string, error) {
	var v string
	err := s.cfg.Store.Backend.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, BucketState, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v = string(it.Value)
		return nil
	})
	return v, err
}

func (s *Syncer) setCursor(ctx context.Context, name, v string) error {
	return s.cfg.Store.Backend.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, BucketState, name, []byte(v), store.Condition{})
		return err
	})
}

// pull applies the feed page by page, storing the cursor after each.
func (s *Syncer) pull(ctx context.Context, rep *Report) error {
	cur, err := s.cursor(ctx, "feed")
	if err != nil {
		return err
	}
	// seen, during a new snapshot after central refused the cursor (the
	// gateway was offline longer than the feed's retention), holds what
	// the snapshot carried: the rest is swept at its end, since its
	// deletes are gone from the feed.
	var seen map[string]bool
	for range 10000 {
		p, err := s.cfg.Upstream.Changes(ctx, cur, pageSize)
		var ue *UpstreamError
		if errors.As(err, &ue) && ue.Status == http.StatusBadRequest && cur != "" && seen == nil {
			s.cfg.Logger.WarnContext(ctx, "gateway sync: central refused the feed cursor; taking a new snapshot", "error", err)
			cur, seen = "", map[string]bool{}
			continue
		}
		if err != nil {
			return err
		}
		for _, ch := range p.Changes {
			if seen != nil && ch.Seq == 0 && ch.Op == dps.ChangeUpsert {
				seen[ch.Kind+"/"+enrollment.Key(ch.ID)] = true
			}
			ok, err := s.apply(ctx, ch)
			if err != nil {
				return fmt.Errorf("gateway: apply %s %s %q: %w", ch.Op, ch.Kind, ch.ID, err)
			}
			if ok {
				rep.Applied++
			} else {
				rep.Skipped++
			}
		}
		if !p.More && seen != nil {
			if err := s.sweep(ctx, seen, rep); err != nil {
				return err
			}
		}
		// During a new snapshot the cursor is stored only at its end: an
		// interrupted one starts again, so the sweep always runs.
		if p.Cursor != "" && p.Cursor != cur && (seen == nil || !p.More) {
			if err := s.setCursor(ctx, "feed", p.Cursor); err != nil {
				return err
			}
		}
		cur = p.Cursor
		if !p.More {
			return nil
		}
	}
	return errors.New("gateway: the feed does not end")
}

// apply writes one change. A change that can never apply (a document
// that does not decode or open, refused as invalid) is logged and
// skipped (false); an error is a transient fault to retry.
func (s *Syncer) apply(ctx context.Context, ch dps.Change) (bool, error) {
	skip := func(why error) (bool, error) {
		s.cfg.Logger.ErrorContext(ctx, "gateway sync: change skipped", "kind", ch.Kind, "id", ch.ID, "op", ch.Op, "seq", ch.Seq, "error", why)
		return false, nil
	}
	permanent := func(err error) bool {
		return errors.Is(err, enrollment.ErrInvalid) || errors.Is(err, manage.ErrBadRequest)
	}
	gone := func(err error) error {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	open := func() ([]byte, error) {
		if len(ch.Document) == 0 {
			return nil, errors.New("upsert without a document")
		}
		return s.cfg.Opener().OpenDocument(ch.Document, ch.Kind, ch.ID)
	}
	switch {
	case ch.Op == dps.ChangeUpsert && (ch.Kind == dps.ChangeEnrollment || ch.Kind == dps.ChangeGroup):
		var why, err error
		if ch.Kind == dps.ChangeEnrollment {
			why, err = upsert(ctx, open, enrollment.DecodeIndividualEnrollment, func(e *enrollment.IndividualEnrollment) { e.ETag, e.RegistrationState = "", nil }, s.cfg.Enrollments)
		} else {
			why, err = upsert(ctx, open, enrollment.DecodeEnrollmentGroup, func(g *enrollment.EnrollmentGroup) { g.ETag = "" }, s.cfg.Groups)
		}
		if why == nil && permanent(err) {
			why = err
		}
		if why != nil {
			return skip(why)
		}
		if err != nil {
			return false, err
		}
	case ch.Kind == dps.ChangeEnrollment && ch.Op == dps.ChangeDelete:
		// Deleting the enrollment revokes its device's certificates
		// (revoke-on-disable), as at central.
		if err := gone(s.cfg.Enrollments.Delete(ctx, ch.ID, "")); err != nil {
			return false, err
		}
	case ch.Kind == dps.ChangeGroup && ch.Op == dps.ChangeDelete:
		if err := gone(s.cfg.Groups.Delete(ctx, ch.ID, "")); err != nil {
			return false, err
		}
	case ch.Kind == dps.ChangeRegistration && ch.Op == dps.ChangeDelete:
		if err := gone(s.cfg.Resources.DeleteRegistration(ctx, ch.ID, "")); err != nil {
			return false, err
		}
	case ch.Kind == dps.ChangeSite && ch.Op == dps.ChangeUpsert:
		site, err := enrollment.DecodeSite(ch.Document)
		if err != nil {
			return skip(err)
		}
		// The site's hubs are the hubs devices here are allocated to.
		for _, h := range site.Hubs {
			_, err := s.cfg.Resources.PutHub(ctx, &enrollment.Hub{Name: h}, store.Condition{IfNoneMatch: true})
			if err != nil && !errors.Is(err, store.ErrPreconditionFailed) && !errors.Is(err, store.ErrConflict) {
				if permanent(err) {
					return skip(err)
				}
				return false, err
			}
		}
	case ch.Kind == dps.ChangeSite && ch.Op == dps.ChangeDelete:
		// The site is gone: central has withdrawn this gateway's CA too.
		s.cfg.Logger.WarnContext(ctx, "gateway sync: central deleted this gateway's site", "site", ch.ID)
	default:
		return skip(fmt.Errorf("unknown change %s/%s", ch.Kind, ch.Op))
	}
	return true, nil
}

// sweep deletes the enrollments and groups a new snapshot did not carry
// (deleted, disabled away or moved off the site while the gateway could
// not follow the feed); deleting them revokes their devices here.
func (s *Syncer) sweep(ctx context.Context, seen map[string]bool, rep *Report) error {
	err := sweepKind(ctx, s.cfg.Store.Enrollments.All, s.cfg.Enrollments, dps.ChangeEnrollment,
		func(e *enrollment.IndividualEnrollment) string { return e.RegistrationID }, seen, rep)
	if err != nil {
		return err
	}
	return sweepKind(ctx, s.cfg.Store.Groups.All, s.cfg.Groups, dps.ChangeGroup,
		func(g *enrollment.EnrollmentGroup) string { return g.EnrollmentGroupID }, seen, rep)
}

// sweepKind is sweep for one kind: it deletes through docs every
// document of all whose kind/ID seen does not hold.
func sweepKind[T any](ctx context.Context, all func(context.Context) ([]T, error), docs Docs[T], kind string, id func(T) string, seen map[string]bool, rep *Report) error {
	vs, err := all(ctx)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if !seen[kind+"/"+enrollment.Key(id(v))] {
			if err := docs.Delete(ctx, id(v), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			rep.Applied++
		}
	}
	return nil
}

// upsert writes the document of an upsert through docs, decoded and
// cleaned of what the store owns. why is set when the document does not
// open or decode (the change is skipped); err is the write's.
func upsert[T any](ctx context.Context, open func() ([]byte, error), decode func([]byte) (T, error), clean func(T), docs Docs[T]) (why, err error) {
	doc, err := open()
	if err != nil {
		return err, nil
	}
	v, err := decode(doc)
	if err != nil {
		return err, nil
	}
	clean(v)
	_, err = docs.Put(ctx, v, store.Condition{})
	return nil, err
}

// pushRecords pushes the outbox in batches, several at once, and removes
// what central answered for, unless the record changed meanwhile.
func (s *Syncer) pushRecords(ctx context.Context, rep *Report) error {
	after := ""
	for {
		var items []store.Item
		if err := s.cfg.Store.Backend.View(ctx, func(tx store.Tx) error {
			var err error
			items, err = tx.Scan(ctx, BucketOutbox, "", after, recordBatch*parallelPushes)
			return err
		}); err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		after = items[len(items)-1].Key
		type batch struct {
			recs   []dps.GatewayRecord
			pushed []outboxItem // what each of recs is, by index
			drop   []outboxItem // entries with nothing to push, or answered
			res    []dps.GatewayRecordResult
			err    error
		}
		var batches []*batch
		for i := 0; i < len(items); i += recordBatch {
			b := &batch{}
			if err := s.prepare(ctx, items[i:min(i+recordBatch, len(items))], &b.recs, &b.pushed, &b.drop); err != nil {
				return err
			}
			batches = append(batches, b)
		}
		var wg sync.WaitGroup
		for _, b := range batches {
			if len(b.recs) == 0 {
				continue
			}
			wg.Go(func() { b.res, b.err = s.cfg.Upstream.PushRecords(ctx, b.recs) })
		}
		wg.Wait()
		var drop []outboxItem
		var firstErr error
		for _, b := range batches {
			drop = append(drop, b.drop...)
			if b.err != nil {
				firstErr = cmp.Or(firstErr, b.err)
				continue
			}
			for i, r := range b.res {
				rep.Pushed++
				switch r.Status {
				case dps.RecordConflict:
					rep.Conflicts++
					s.cfg.Logger.WarnContext(ctx, "gateway sync: registration conflict at central (cloned credential?)", "registration_id", r.RegistrationID, "winner", r.Winner, "revoked", r.Revoked)
				case dps.RecordRefused:
					s.cfg.Logger.ErrorContext(ctx, "gateway sync: central refused a record", "registration_id", r.RegistrationID, "error", r.Error)
				}
				drop = append(drop, b.pushed[i])
			}
		}
		// What central answered for leaves the outbox even when another
		// batch failed.
		if err := s.done(ctx, drop); err != nil {
			return err
		}
		if firstErr != nil {
			return firstErr
		}
		if len(items) < recordBatch*parallelPushes {
			return nil
		}
	}
}

// prepare reads the records of outbox items: those to push, and those
// with nothing to push (gone, or not an assignment).
func (s *Syncer) prepare(ctx context.Context, items []store.Item, recs *[]dps.GatewayRecord, pushed, drop *[]outboxItem) error {
	for _, it := range items {
		var e outboxEntry
		_ = json.Unmarshal(it.Value, &e)
		oi := outboxItem{key: it.Key, etag: e.ETag}
		rec, cert, err := s.record(ctx, it.Key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			*drop = append(*drop, oi)
			continue
		case err != nil:
			return err
		case rec.Status != enrollment.RegistrationAssigned:
			// Only assignments go up; a failed or disabled one is the
			// gateway's own business (and in its audit trail).
			*drop = append(*drop, oi)
			continue
		}
		oi.etag = rec.ETag
		reg, err := json.Marshal(rec.State())
		if err != nil {
			return err
		}
		gr := dps.GatewayRecord{Registration: reg, EnrollmentGroupID: rec.EnrollmentGroupID, AttestationType: rec.AttestationType}
		if cert != nil {
			gr.Certificate = base64.StdEncoding.EncodeToString(cert)
		}
		*recs = append(*recs, gr)
		*pushed = append(*pushed, oi)
	}
	return nil
}

type outboxItem struct{ key, etag string }

// done removes outbox entries still naming the ETag that was handled.
func (s *Syncer) done(ctx context.Context, items []outboxItem) error {
	if len(items) == 0 {
		return nil
	}
	return s.cfg.Store.Backend.Update(ctx, func(tx store.Tx) error {
		for _, oi := range items {
			it, err := tx.Get(ctx, BucketOutbox, oi.key)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var e outboxEntry
			_ = json.Unmarshal(it.Value, &e)
			if e.ETag != oi.etag {
				continue // written again since: push that version next
			}
			if err := tx.Delete(ctx, BucketOutbox, oi.key, store.Condition{}); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
}

// record reads a record and the DER of its newest certificate (nil when
// it has none).
func (s *Syncer) record(ctx context.Context, key string) (*enrollment.Registration, []byte, error) {
	rec, err := s.cfg.Store.Registrations.Get(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	certs, err := s.certs.AllBy(ctx, revocation.IndexCertificatesByRegistration, rec.RegistrationID)
	if err != nil {
		return nil, nil, err
	}
	var newest *enrollment.Certificate
	for _, c := range certs {
		if len(c.Chain) == 0 || c.RevokedAt != nil {
			continue
		}
		if newest == nil || c.NotBefore.After(newest.NotBefore) {
			newest = c
		}
	}
	if newest == nil {
		return rec, nil, nil
	}
	return rec, newest.Chain[0], nil
}

// pushAudit pushes the sealed trail after the stored cursor.
func (s *Syncer) pushAudit(ctx context.Context, rep *Report) error {
	cur, err := s.cursor(ctx, "audit")
	if err != nil {
		return err
	}
	var after uint64
	if cur != "" {
		if after, err = strconv.ParseUint(cur, 10, 64); err != nil {
			return fmt.Errorf("gateway: audit cursor %q: %w", cur, err)
		}
	}
	for {
		evs, next, err := s.cfg.Audit.List(ctx, audit.Filter{}, after, auditBatch, 0)
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			out := make([]dps.AuditEvent, len(evs))
			for i, e := range evs {
				out[i] = e.AuditEvent
			}
			if _, err := s.cfg.Upstream.PushAudit(ctx, out); err != nil {
				return err
			}
			rep.Events += len(evs)
		}
		if next == after {
			return nil
		}
		if err := s.setCursor(ctx, "audit", strconv.FormatUint(next, 10)); err != nil {
			return err
		}
		after = next
		if len(evs) < auditBatch {
			return nil
		}
	}
}
