package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/gatewaykey"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// contract is central's gateway API as docs/protocol.md states it, small:
// a feed paged by index, records idempotent by (ID, ETag), events by ID.
type contract struct {
	mu       sync.Mutex
	feed     []dps.Change
	cursors  []string       // the cursor of each changes request
	records  map[string]int // "id/etag" -> times pushed
	stored   int
	events   map[string]int
	statuses []dps.GatewayStatus
}

func (c *contract) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(r.TLS.PeerCertificates) == 0 {
		http.Error(w, `{"errorCode":401002,"message":"no client certificate"}`, http.StatusUnauthorized)
		return
	}
	answer := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	switch r.URL.Path {
	case dps.GatewayPrefix + "/changes":
		cur := r.URL.Query().Get("cursor")
		c.cursors = append(c.cursors, cur)
		if cur == "stale" { // older than the feed's retention
			w.WriteHeader(http.StatusBadRequest)
			answer(dps.ErrorBody{ErrorCode: 400004, Message: "invalid or expired cursor (start again with an empty one)"})
			return
		}
		from, _ := strconv.Atoi(cur)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		limit = min(limit, 2) // small pages: paging is exercised
		to := min(from+limit, len(c.feed))
		answer(dps.ChangesPage{Changes: c.feed[from:to], Cursor: strconv.Itoa(to), More: to < len(c.feed)})
	case dps.GatewayPrefix + "/records":
		var in dps.GatewayRecords
		_ = json.NewDecoder(r.Body).Decode(&in)
		var out dps.GatewayRecordResults
		for _, rec := range in.Records {
			var st enrollment.RegistrationState
			_ = json.Unmarshal(rec.Registration, &st)
			k := st.RegistrationID + "/" + st.ETag
			c.records[k]++
			status := dps.RecordDuplicate
			if c.records[k] == 1 {
				status = dps.RecordStored
				c.stored++
			}
			out.Results = append(out.Results, dps.GatewayRecordResult{RegistrationID: st.RegistrationID, Status: status})
		}
		answer(out)
	case dps.GatewayPrefix + "/audit":
		var in dps.GatewayAudit
		_ = json.NewDecoder(r.Body).Decode(&in)
		var res dps.GatewayAuditResult
		for _, e := range in.Events {
			if c.events[e.ID]++; c.events[e.ID] == 1 {
				res.Recorded++
			} else {
				res.Duplicates++
			}
		}
		answer(res)
	case dps.GatewayPrefix + "/status":
		var s dps.GatewayStatus
		_ = json.NewDecoder(r.Body).Decode(&s)
		c.statuses = append(c.statuses, s)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// rig is a gateway's store and use cases, and a contract server.
type rig struct {
	srv    *httptest.Server
	api    *contract
	st     *store.Store
	m      *manage.Service
	log    *audit.Log
	sealTo *gatewaykey.Recipient
	sync   *Syncer
	caCert *x509.Certificate
}

func selfSigned(t *testing.T) (*tls.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "gw-1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, key
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	api := &contract{records: map[string]int{}, events: map[string]int{}}
	srv := httptest.NewUnstartedServer(api)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	cert, key := selfSigned(t)
	cl, err := NewClient(srv.URL, roots, func() (*tls.Certificate, error) { return cert, nil })
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	b := Outbox(memory.New())
	l, err := audit.New(audit.Config{Backend: b, Signer: audit.NewHMACSigner(kek)})
	if err != nil {
		t.Fatal(err)
	}
	raw := store.New(b, nil)
	rev, err := revocation.NewRevocations(raw, revocation.RevocationConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(audit.Changes(b, l), nil)
	m, err := manage.New(manage.Config{Store: st, Revocations: rev})
	if err != nil {
		t.Fatal(err)
	}
	opener, err := gatewaykey.NewOpener(key)
	if err != nil {
		t.Fatal(err)
	}
	sealTo, err := gatewaykey.NewRecipient(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{srv: srv, api: api, st: st, m: m, log: l, sealTo: sealTo, caCert: cert.Leaf}
	r.sync, err = New(Config{Upstream: cl, Store: st, Enrollments: m.IndividualEnrollments(), Groups: m.EnrollmentGroups(), Resources: m,
		Audit: l, Opener: func() *gatewaykey.Opener { return opener }, CA: func() *x509.Certificate { return r.caCert }})
	if err != nil {
		t.Fatal(err)
	}
	_ = ctx
	return r
}

// change is a feed entry of doc, its keys sealed to the gateway.
func (r *rig) change(t *testing.T, kind, id, op string, doc any) dps.Change {
	t.Helper()
	ch := dps.Change{Seq: uint64(len(r.api.feed) + 1), Kind: kind, ID: id, Op: op}
	if doc != nil {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Document, err = r.sealTo.SealDocument(b, kind, id); err != nil {
			t.Fatal(err)
		}
	}
	return ch
}

func symEnrollment(id, key, status string) *enrollment.IndividualEnrollment {
	return &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{ProvisioningStatus: status, Site: "plant",
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: key}}}}
}

func TestSyncAppliesFeed(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	r.api.feed = []dps.Change{
		r.change(t, dps.ChangeSite, "plant", dps.ChangeUpsert, enrollment.Site{Name: "plant", Hubs: []string{"hub.plant.example.net"}}),
		r.change(t, dps.ChangeEnrollment, "dev-1", dps.ChangeUpsert, symEnrollment("dev-1", key, enrollment.StatusEnabled)),
		r.change(t, dps.ChangeEnrollment, "dev-2", dps.ChangeUpsert, symEnrollment("dev-2", key, enrollment.StatusEnabled)),
		r.change(t, dps.ChangeGroup, "fleet", dps.ChangeUpsert, &enrollment.EnrollmentGroup{EnrollmentGroupID: "fleet", Spec: enrollment.Spec{Site: "plant",
			Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: key}}}}),
		// A key sealed for another document does not open: skipped.
		{Seq: 5, Kind: dps.ChangeEnrollment, ID: "dev-3", Op: dps.ChangeUpsert, Document: r.change(t, dps.ChangeEnrollment, "dev-1", dps.ChangeUpsert, symEnrollment("dev-3", key, "")).Document},
	}
	rep, err := r.sync.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != 4 || rep.Skipped != 1 {
		t.Fatalf("report %+v, want 4 applied and 1 skipped", rep)
	}
	if _, err := r.st.Hubs.Get(ctx, "hub.plant.example.net"); err != nil {
		t.Fatalf("the site's hub: %v", err)
	}
	e, err := r.st.Enrollments.Get(ctx, "dev-1")
	if err != nil || e.Attestation.SymmetricKey.PrimaryKey != key {
		t.Fatalf("dev-1 at the gateway: %+v %v (its key opened?)", e, err)
	}
	if _, err := r.st.Enrollments.Get(ctx, "dev-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dev-3, whose key does not open, was applied: %v", err)
	}
	// A disable, a delete and a registration delete; the next sync goes
	// on from the stored cursor.
	if _, err := r.st.Registrations.Put(ctx, &enrollment.Registration{RegistrationID: "dev-2", DeviceID: "dev-2", Status: "assigned", AssignedHub: "hub.plant.example.net"}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	r.api.mu.Lock()
	r.api.feed = append(r.api.feed,
		r.change(t, dps.ChangeEnrollment, "dev-1", dps.ChangeUpsert, symEnrollment("dev-1", key, enrollment.StatusDisabled)),
		r.change(t, dps.ChangeRegistration, "dev-2", dps.ChangeDelete, nil),
		r.change(t, dps.ChangeGroup, "fleet", dps.ChangeDelete, nil),
		r.change(t, dps.ChangeGroup, "never-here", dps.ChangeDelete, nil))
	r.api.cursors = nil
	r.api.mu.Unlock()
	if rep, err = r.sync.Sync(ctx); err != nil || rep.Applied != 4 {
		t.Fatalf("second sync: %+v %v", rep, err)
	}
	if r.api.cursors[0] != "5" {
		t.Fatalf("second sync started at cursor %q, want the stored 5", r.api.cursors[0])
	}
	if e, _ := r.st.Enrollments.Get(ctx, "dev-1"); e.ProvisioningStatus != enrollment.StatusDisabled {
		t.Fatal("dev-1 not disabled at the gateway")
	}
	if _, err := r.st.Registrations.Get(ctx, "dev-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dev-2's record deleted centrally is still here: %v", err)
	}
	if _, err := r.st.Groups.Get(ctx, "fleet"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("fleet deleted centrally is still here: %v", err)
	}
	if n, _ := Backlog(ctx, r.st.Backend); n != 0 {
		t.Fatalf("backlog %d: a record deleted centrally must not be pushed", n)
	}
}

func TestSyncPushesAtLeastOnceIdempotently(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	put := func(id, status string) {
		t.Helper()
		now := time.Now()
		if _, err := r.st.Registrations.Put(ctx, &enrollment.Registration{RegistrationID: id, DeviceID: id, Status: status,
			AssignedHub: "hub.plant.example.net", Versioned: enrollment.Versioned{CreatedDateTimeUTC: &now}}, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 150 { // two batches
		put("dev-"+strconv.Itoa(i), enrollment.RegistrationAssigned)
	}
	put("dev-failed", "failed")
	if n, _ := Backlog(ctx, r.st.Backend); n != 151 {
		t.Fatalf("backlog %d, want 151", n)
	}
	// Central unreachable: nothing is lost.
	r.srv.Close()
	up, _ := NewClient("https://127.0.0.1:1", nil, func() (*tls.Certificate, error) { return nil, nil })
	cfg := r.sync.cfg
	cfg.Upstream = up
	offline, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := offline.Sync(ctx); !errors.Is(err, ErrUnreachable) || rep.Backlog != 151 {
		t.Fatalf("offline sync: %+v %v, want ErrUnreachable and the backlog kept", rep, err)
	}
	r2 := newRig(t) // a central that is up, for the same gateway store
	r.sync.cfg.Upstream = r2.sync.cfg.Upstream
	rep, err := r.sync.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pushed != 150 || rep.Backlog != 0 || r2.api.stored != 150 {
		t.Fatalf("report %+v, central stored %d; want 150 pushed (not the failed one), backlog 0", rep, r2.api.stored)
	}
	last := r2.api.statuses[len(r2.api.statuses)-1]
	if last.Backlog != 0 || last.CASerial == "" || last.LastSync == nil {
		t.Fatalf("status %+v", last)
	}
	// Nothing again; a record written again goes up in its new version.
	if rep, _ := r.sync.Sync(ctx); rep.Pushed != 0 {
		t.Fatalf("second sync pushed %d", rep.Pushed)
	}
	put("dev-7", enrollment.RegistrationAssigned)
	if rep, _ := r.sync.Sync(ctx); rep.Pushed != 1 || r2.api.stored != 151 {
		t.Fatalf("after an update: %+v, stored %d", rep, r2.api.stored)
	}
	for k, n := range r2.api.records {
		if n != 1 {
			t.Fatalf("%s pushed %d times", k, n)
		}
	}
}

func TestOutboxKeepsNewerVersion(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	if _, err := r.st.Registrations.Put(ctx, &enrollment.Registration{RegistrationID: "dev-1", Status: "assigned"}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	// The push of the first version is answered after a second write:
	// the entry stays for the second version.
	if _, err := r.st.Registrations.Put(ctx, &enrollment.Registration{RegistrationID: "dev-1", Status: "assigned"}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if err := r.sync.done(ctx, []outboxItem{{key: "dev-1", etag: "not-the-current-one"}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := Backlog(ctx, r.st.Backend); n != 1 {
		t.Fatalf("backlog %d after an answer for an older version, want 1", n)
	}
}

func TestAuditPushedOnce(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	// A management write is an audit event (audit.Changes), sealed later.
	if _, err := r.m.PutHub(audit.WithActor(ctx, "policy:owner"), &enrollment.Hub{Name: "hub.plant.example.net"}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.log.Seal(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	rep, err := r.sync.Sync(ctx)
	if err != nil || rep.Events == 0 {
		t.Fatalf("first sync: %+v %v", rep, err)
	}
	if rep, _ := r.sync.Sync(ctx); rep.Events != 0 {
		t.Fatalf("second sync pushed %d events again", rep.Events)
	}
	for id, n := range r.api.events {
		if n != 1 {
			t.Fatalf("event %s pushed %d times", id, n)
		}
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ro := ReadOnly[*enrollment.IndividualEnrollment](r.m.IndividualEnrollments())
	e := symEnrollment("dev-1", "", "")
	if _, err := ro.Put(ctx, e, store.Condition{}); !errors.Is(err, ErrReadOnly) || !errors.Is(err, manage.ErrBadRequest) {
		t.Fatalf("Put: %v", err)
	}
	if err := ro.Delete(ctx, "dev-1", ""); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Delete: %v", err)
	}
	if res := ro.Bulk(ctx, "create", []*enrollment.IndividualEnrollment{e}); len(res) != 1 || !errors.Is(res[0].Err, ErrReadOnly) {
		t.Fatalf("Bulk: %+v", res)
	}
	if _, err := r.st.Enrollments.Get(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused write was stored")
	}
	if _, err := ro.Get(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
}

func TestSyncNewSnapshotSweeps(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, id := range []string{"dev-1", "gone"} {
		if _, err := r.m.IndividualEnrollments().Put(ctx, symEnrollment(id, key, ""), store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.m.EnrollmentGroups().Put(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: "old-group", Spec: enrollment.Spec{
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: key}}}}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	// The gateway was offline past the feed's retention: central refuses
	// its cursor, and its snapshot no longer has "gone" or "old-group".
	if err := r.sync.setCursor(ctx, "feed", "stale"); err != nil {
		t.Fatal(err)
	}
	ch := r.change(t, dps.ChangeEnrollment, "dev-1", dps.ChangeUpsert, symEnrollment("dev-1", key, ""))
	ch.Seq = 0
	r.api.feed = []dps.Change{ch}
	if _, err := r.sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Enrollments.Get(ctx, "dev-1"); err != nil {
		t.Fatalf("dev-1, in the snapshot: %v", err)
	}
	if _, err := r.st.Enrollments.Get(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an enrollment the new snapshot lacks was kept: %v", err)
	}
	if _, err := r.st.Groups.Get(ctx, "old-group"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a group the new snapshot lacks was kept: %v", err)
	}
	if cur, _ := r.sync.cursor(ctx, "feed"); cur != "1" {
		t.Fatalf("cursor %q after the new snapshot, want 1", cur)
	}
}
