package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/console"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/pkg/enrollment"
)

func TestLinkSignInIsOneTime(t *testing.T) {
	e := newEnv(t, console.Config{LinkTTL: time.Minute})
	b := e.browser()
	link := e.link(ownerPolicy)
	// A GET (a link preview, a mail scanner) does not use the link up.
	for range 2 {
		if st, body := b.get(link); st != http.StatusOK || !strings.Contains(body, `id="signin"`) {
			t.Fatalf("GET link: %d", st)
		}
	}
	if a := b.post(link, url.Values{}); a.status != http.StatusSeeOther {
		t.Fatalf("first use: %d %s", a.status, a.body)
	}
	if st, body := b.get("/console"); st != http.StatusOK || !strings.Contains(body, "policy:"+ownerPolicy) {
		t.Fatalf("dashboard after sign-in: %d", st)
	}
	other := e.browser()
	if a := other.post(link, url.Values{}); a.status != http.StatusGone {
		t.Fatalf("second use: %d, want 410", a.status)
	}

	// An expired link is refused.
	late := e.link(ownerPolicy)
	e.clock.Add(2 * time.Minute)
	if a := e.browser().post(late, url.Values{}); a.status != http.StatusGone {
		t.Fatalf("expired link: %d, want 410", a.status)
	}
	// A link from another site's form is refused before it is used.
	cross := e.link(ownerPolicy)
	if a := e.browser().postWith(cross, url.Values{}, "https://evil.example"); a.status != http.StatusForbidden {
		t.Fatalf("cross-origin link use: %d, want 403", a.status)
	}
	if a := e.browser().post(cross, url.Values{}); a.status != http.StatusSeeOther {
		t.Fatalf("link after a refused cross-origin use: %d, want 303", a.status)
	}
}

func TestLinkNeedsSAS(t *testing.T) {
	e := newEnv(t, console.Config{})
	resp, err := e.srv.Client().Post(e.url("/console/links?api-version=2021-10-01"), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /console/links without SAS: %d, want 401", resp.StatusCode)
	}
}

func TestNoSessionRedirectsToSignIn(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.browser()
	for _, p := range []string{"/console", "/console/enrollments", "/console/groups/g1", "/console/audit"} {
		resp, err := b.c.Get(e.url(p))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
			t.Errorf("GET %s without a session: %d %s", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if a := b.post("/console/enrollments", url.Values{"id": {"x"}, "csrf": {"x"}}); a.status != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d, want 401", a.status)
	}
}

func TestEnrollmentLifecycle(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	ctx := context.Background()

	if st, _ := b.get("/console/enrollments"); st != http.StatusOK {
		t.Fatalf("list: %d", st)
	}
	a := b.post("/console/enrollments", url.Values{"id": {"dev-1"}, "deviceId": {"device-one"}, "attestation": {"symmetricKey"}, "status": {"enabled"},
		"initialTwin": {`{"tags":{"site":"berlin"}}`}})
	if a.status != http.StatusSeeOther || a.location != "/console/enrollments/dev-1?created=1" {
		t.Fatalf("create: %d %s %s", a.status, a.location, a.body)
	}
	got, err := e.uc.Enrollments.Get(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.DeviceID != "device-one" || got.Attestation.SymmetricKey.PrimaryKey == "" || got.InitialTwin == nil {
		t.Fatalf("created enrollment: %+v", got)
	}
	key := got.Attestation.SymmetricKey.PrimaryKey
	if _, err := e.uc.Resources.PutHub(ctx, &enrollment.Hub{Name: "hub-a.example.com", AllocationWeight: 1}, store.Condition{}); err != nil {
		t.Fatal(err)
	}

	// Creating it again is a conflict, not a replacement.
	if a := b.post("/console/enrollments", url.Values{"id": {"dev-1"}}); a.status != http.StatusConflict {
		t.Fatalf("create again: %d", a.status)
	}
	// Bad input is a 400 with the reason.
	if a := b.post("/console/enrollments", url.Values{"id": {"bad id!"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "registrationId") {
		t.Fatalf("bad ID: %d %s", a.status, a.body)
	}
	if a := b.post("/console/enrollments", url.Values{"id": {"dev-2"}, "firmwarePolicy": {`{"nope":1}`}}); a.status != http.StatusBadRequest {
		t.Fatalf("bad firmware policy: %d", a.status)
	}

	st, page := b.get("/console/enrollments/dev-1")
	if st != http.StatusOK || shows(page, key) {
		t.Fatalf("detail page: %d, shows key: %v", st, shows(page, key))
	}
	etag := etagOf(t, page)

	// Edit with the page's ETag.
	a = b.post("/console/enrollments/dev-1", url.Values{"etag": {etag}, "deviceId": {"device-1b"}, "status": {"enabled"}, "iotHubHostName": {"hub-a.example.com"}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("edit: %d %s", a.status, a.body)
	}
	got, _ = e.uc.Enrollments.Get(ctx, "dev-1")
	if got.DeviceID != "device-1b" || got.IoTHubHostName != "hub-a.example.com" || got.Attestation.SymmetricKey.PrimaryKey != key {
		t.Fatalf("edited enrollment: device %q hub %q, key kept %v", got.DeviceID, got.IoTHubHostName, got.Attestation.SymmetricKey.PrimaryKey == key)
	}
	// A second edit from the stale page is a conflict and changes nothing.
	a = b.post("/console/enrollments/dev-1", url.Values{"etag": {etag}, "deviceId": {"overwritten"}})
	if a.status != http.StatusConflict || !strings.Contains(a.body, "Someone changed this enrollment") {
		t.Fatalf("stale edit: %d %s", a.status, a.body)
	}
	if got, _ := e.uc.Enrollments.Get(ctx, "dev-1"); got.DeviceID != "device-1b" {
		t.Fatalf("stale edit applied: %q", got.DeviceID)
	}

	// Disable, then enable.
	_, page = b.get("/console/enrollments/dev-1")
	if a := b.post("/console/enrollments/dev-1/status", url.Values{"etag": {etagOf(t, page)}, "status": {"disabled"}}); a.status != http.StatusSeeOther {
		t.Fatalf("disable: %d %s", a.status, a.body)
	}
	if got, _ := e.uc.Enrollments.Get(ctx, "dev-1"); got.ProvisioningStatus != enrollment.StatusDisabled {
		t.Fatalf("status after disable: %q", got.ProvisioningStatus)
	}
	_, page = b.get("/console/enrollments/dev-1")
	if !strings.Contains(page, `id="enable"`) {
		t.Fatal("a disabled enrollment's page has no Enable button")
	}

	// Reveal: the key is shown, and the read is in the audit trail.
	a = b.post("/console/enrollments/dev-1/keys", url.Values{})
	if a.status != http.StatusOK || !shows(a.body, key) {
		t.Fatalf("reveal: %d, key shown %v", a.status, shows(a.body, key))
	}
	if err := e.trail.Buffer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.trail.Log.Seal(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	evs, _, err := e.trail.Log.List(ctx, audit.Filter{Action: "enrollment.read-keys"}, 0, 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Actor != "policy:"+ownerPolicy || evs[0].Resource != "enrollment/dev-1" {
		t.Fatalf("read-keys events: %+v %v", evs, err)
	}
	// The changes name the console's principal as actor.
	changes, _, _ := e.trail.Log.List(ctx, audit.Filter{Action: "enrollment."}, 0, 0, 0)
	for _, ev := range changes {
		if ev.Actor != "policy:"+ownerPolicy {
			t.Errorf("event %s has actor %q", ev.Action, ev.Actor)
		}
	}

	// Delete: a confirmation page, then the POST with its ETag.
	st, page = b.get("/console/enrollments/dev-1/delete")
	if st != http.StatusOK || !strings.Contains(page, `id="confirm-delete"`) {
		t.Fatalf("confirm page: %d", st)
	}
	if a := b.post("/console/enrollments/dev-1/delete", url.Values{"etag": {"stale"}}); a.status != http.StatusConflict {
		t.Fatalf("delete with a stale ETag: %d", a.status)
	}
	if a := b.post("/console/enrollments/dev-1/delete", url.Values{"etag": {etagOf(t, page)}}); a.status != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if _, err := e.uc.Enrollments.Get(ctx, "dev-1"); err == nil {
		t.Fatal("enrollment still there after delete")
	}
	if st, _ := b.get("/console/enrollments/dev-1"); st != http.StatusNotFound {
		t.Fatalf("deleted enrollment's page: %d", st)
	}
}

func TestGroupsPagingAndSearch(t *testing.T) {
	e := newEnv(t, console.Config{PageSize: 3})
	b := e.signIn(ownerPolicy)
	for _, id := range []string{"g1", "g2", "g3", "g4", "g5"} {
		if a := b.post("/console/groups", url.Values{"id": {id}, "attestation": {"symmetricKey"}}); a.status != http.StatusSeeOther {
			t.Fatalf("create %s: %d %s", id, a.status, a.body)
		}
	}
	st, page := b.get("/console/groups")
	if st != http.StatusOK || !strings.Contains(page, ">g1<") || strings.Contains(page, ">g4<") || !strings.Contains(page, `id="next"`) {
		t.Fatalf("first page: %d\n%s", st, page)
	}
	next := regexpFind(page, `id="next" href="([^"]+)"`)
	st, page = b.get(strings.ReplaceAll(next, "&amp;", "&"))
	if st != http.StatusOK || !strings.Contains(page, ">g4<") || strings.Contains(page, ">g1<") {
		t.Fatalf("second page: %d", st)
	}
	resp, err := b.c.Get(e.url("/console/groups?q=G3"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/groups/g3" {
		t.Fatalf("search: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st, page := b.get("/console/groups?q=nothing"); st != http.StatusOK || !strings.Contains(page, "No group has the ID nothing") {
		t.Fatalf("search without a match: %d", st)
	}
	if st, _ := b.get("/console/groups?after=garbage"); st != http.StatusBadRequest {
		t.Fatalf("bad continuation: %d", st)
	}
}

func TestViewerCannotWrite(t *testing.T) {
	e := newEnv(t, console.Config{})
	owner := e.signIn(ownerPolicy)
	if a := owner.post("/console/enrollments", url.Values{"id": {"dev-1"}}); a.status != http.StatusSeeOther {
		t.Fatal(a.status)
	}
	v := e.signIn(viewerPolicy)
	st, page := v.get("/console/enrollments")
	if st != http.StatusOK || strings.Contains(page, `id="create"`) {
		t.Fatalf("viewer's list: %d, create form shown %v", st, strings.Contains(page, `id="create"`))
	}
	st, page = v.get("/console/enrollments/dev-1")
	for _, button := range []string{`id="reveal"`, `id="disable"`, `id="delete"`, `id="save"`} {
		if st != http.StatusOK || strings.Contains(page, button) {
			t.Errorf("viewer's detail page: %d, shows %s", st, button)
		}
	}
	got, _ := e.uc.Enrollments.Get(context.Background(), "dev-1")
	for _, w := range []struct {
		path string
		form url.Values
	}{
		{"/console/enrollments", url.Values{"id": {"dev-2"}}},
		{"/console/enrollments/dev-1", url.Values{"etag": {got.ETag}, "deviceId": {"x"}}},
		{"/console/enrollments/dev-1/status", url.Values{"etag": {got.ETag}, "status": {"disabled"}}},
		{"/console/enrollments/dev-1/keys", url.Values{}},
		{"/console/enrollments/dev-1/delete", url.Values{"etag": {got.ETag}}},
		{"/console/groups", url.Values{"id": {"g"}}},
		{"/console/hubs/hub.example.com", url.Values{"etag": {"x"}}},
		{"/console/registrations/dev-1/revoke", url.Values{"etag": {"x"}}},
		{"/console/alerts/x/ack", url.Values{}},
	} {
		if a := v.post(w.path, w.form); a.status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", w.path, a.status)
		}
	}
	if st, _ := v.get("/console/audit"); st != http.StatusForbidden {
		t.Errorf("viewer GET /console/audit: %d, want 403", st)
	}
	if after, _ := e.uc.Enrollments.Get(context.Background(), "dev-1"); after.ETag != got.ETag {
		t.Error("a viewer's POST changed the enrollment")
	}
}

func TestPolicyRightsAreReadAgain(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	ctx := context.Background()
	p, _ := e.st.Policies.Get(ctx, ownerPolicy)
	p.Rights = enrollment.RightEnrollmentRead
	if _, err := e.st.Policies.Put(ctx, p, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if a := b.post("/console/enrollments", url.Values{"id": {"dev-1"}}); a.status != http.StatusForbidden {
		t.Fatalf("POST after the right was taken away: %d", a.status)
	}
	if err := e.st.Policies.Delete(ctx, ownerPolicy, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.get("/console"); st != http.StatusSeeOther {
		t.Fatalf("GET after the policy was deleted: %d, want a redirect to sign-in", st)
	}
}

func TestCSRFAndOrigin(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	if st, _ := b.get("/console/enrollments"); st != http.StatusOK {
		t.Fatal(st)
	}
	for name, a := range map[string]answer{
		"forged token":  b.post("/console/enrollments", url.Values{"id": {"dev-1"}, "csrf": {"forged"}}),
		"no token":      b.post("/console/enrollments", url.Values{"id": {"dev-1"}, "csrf": {""}}),
		"other origin":  b.postWith("/console/enrollments", url.Values{"id": {"dev-1"}}, "https://evil.example"),
		"plain http":    b.postWith("/console/enrollments", url.Values{"id": {"dev-1"}}, "http://"+e.host),
		"logout forged": b.post("/console/logout", url.Values{"csrf": {"forged"}}),
	} {
		if a.status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, a.status)
		}
	}
	if _, err := e.uc.Enrollments.Get(context.Background(), "dev-1"); err == nil {
		t.Fatal("a refused POST created the enrollment")
	}
	// Another session's token is not this session's.
	other := e.signIn(ownerPolicy)
	other.get("/console/enrollments")
	if a := b.post("/console/enrollments", url.Values{"id": {"dev-1"}, "csrf": {other.csrf}}); a.status != http.StatusForbidden {
		t.Errorf("another session's token: %d", a.status)
	}
	if a := b.post("/console/enrollments", url.Values{"id": {"dev-1"}}); a.status != http.StatusSeeOther {
		t.Errorf("the right token: %d %s", a.status, a.body)
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, console.Config{IdleTimeout: 10 * time.Minute, MaxAge: time.Hour})
	b := e.signIn(ownerPolicy)
	// Used every 9 minutes, the session lives until its absolute expiry.
	for range 6 {
		e.clock.Add(9 * time.Minute)
		if st, _ := b.get("/console/enrollments"); st != http.StatusOK {
			t.Fatalf("active session at %v: %d", e.clock.Now(), st)
		}
	}
	e.clock.Add(7 * time.Minute) // 61 minutes after sign-in
	if st, _ := b.get("/console/enrollments"); st != http.StatusSeeOther {
		t.Fatalf("past max age: %d, want 303 to sign-in", st)
	}
	// Idle expiry.
	b = e.signIn(ownerPolicy)
	e.clock.Add(11 * time.Minute)
	if st, _ := b.get("/console"); st != http.StatusSeeOther {
		t.Fatalf("idle session: %d, want 303", st)
	}
	// Expired sessions and links are pruned from the store.
	e.link(ownerPolicy)
	e.signIn(ownerPolicy)
	e.clock.Add(2 * time.Hour)
	if n, err := e.cons.PruneExpired(context.Background(), e.clock.Now()); err != nil || n < 2 {
		t.Fatalf("PruneExpired: %d, %v", n, err)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	b.get("/console")
	if a := b.post("/console/logout", url.Values{}); a.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", a.status)
	}
	if st, _ := b.get("/console"); st != http.StatusSeeOther {
		t.Fatalf("after logout: %d", st)
	}
}

func TestSessionsAreKeyedByHash(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	u, _ := url.Parse(e.url("/"))
	var cookie string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == console.CookieName {
			cookie = c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie")
	}
	err := e.backend.View(context.Background(), func(tx store.Tx) error {
		items, err := tx.Scan(context.Background(), console.BucketSessions, "", "", 0)
		if len(items) != 1 {
			t.Errorf("%d sessions stored", len(items))
		}
		for _, it := range items {
			if strings.Contains(it.Key, cookie) || strings.Contains(string(it.Value), cookie) {
				t.Error("the store holds the cookie value")
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOperationsPages(t *testing.T) {
	e := newEnv(t, console.Config{})
	ctx := context.Background()
	b := e.signIn(ownerPolicy)
	// A group, a hub, a registration record of a device on it, an alert.
	if a := b.post("/console/groups", url.Values{"id": {"g1"}}); a.status != http.StatusSeeOther {
		t.Fatal(a.status, a.body)
	}
	if _, err := e.uc.Resources.PutHub(ctx, &enrollment.Hub{Name: "hub-a.example.com", AllocationWeight: 1}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour).UTC()
	if _, err := e.st.Registrations.Put(ctx, &enrollment.Registration{RegistrationID: "dev-7", DeviceID: "dev-7", AssignedHub: "hub-a.example.com",
		Status: enrollment.RegistrationAssigned, AttestationType: "symmetricKey", EnrollmentGroupID: "g1",
		CertificateSerials: []string{"0abc"}, CertificateExpiry: map[string]time.Time{"0abc": exp}}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	alert := &detect.Record{ID: audit.NewID(time.Now()), Rule: detect.RuleBruteForce, Severity: "high", RegistrationID: "dev-7", Time: time.Now(), Status: detect.StatusOpen}
	raw, _ := json.Marshal(alert)
	if err := e.backend.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, detect.BucketAlerts, alert.ID, raw, store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.trail.Buffer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.trail.Log.Seal(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}

	for _, p := range []struct{ path, want string }{
		{"/console", "Registrations per minute"},
		{"/console/registrations", "dev-7"},
		{"/console/registrations?by=hub&q=hub-a.example.com", "dev-7"},
		{"/console/registrations?by=device&q=dev-7", "dev-7"},
		{"/console/registrations?by=group&q=g1", "dev-7"},
		{"/console/registrations/dev-7", "CN=dev-7"},
		{"/console/hubs", "hub-a.example.com"},
		{"/console/ca", "Download the CRL"},
		{"/console/audit", "group.create"},
		{"/console/audit?action=group.&actor=policy:" + ownerPolicy, "group.create"},
		{"/console/alerts", detect.RuleBruteForce},
		{"/console/alerts?status=open", detect.RuleBruteForce},
		{"/console/groups/g1", "g1"},
	} {
		st, page := b.get(p.path)
		if st != http.StatusOK || !strings.Contains(page, p.want) {
			t.Errorf("GET %s: %d, has %q: %v", p.path, st, p.want, strings.Contains(page, p.want))
		}
	}
	if st, _ := b.get("/console/alerts?status=bogus"); st != http.StatusBadRequest {
		t.Errorf("bad status filter: %d", st)
	}
	if st, _ := b.get("/console/nothing-here"); st != http.StatusNotFound {
		t.Errorf("unknown page: %d", st)
	}

	// Hub: drain with the listed ETag; a stale one is a conflict.
	_, page := b.get("/console/hubs")
	etag := etagOf(t, page)
	if a := b.post("/console/hubs/hub-a.example.com", url.Values{"etag": {etag}, "weight": {"5"}, "capacity": {"100"}, "status": {"draining"}}); a.status != http.StatusSeeOther {
		t.Fatalf("drain: %d %s", a.status, a.body)
	}
	h, _ := e.uc.Resources.Hub(ctx, "hub-a.example.com")
	if h.Status != enrollment.HubDraining || h.AllocationWeight != 5 || h.Capacity != 100 {
		t.Fatalf("hub after drain: %+v", h)
	}
	if a := b.post("/console/hubs/hub-a.example.com", url.Values{"etag": {etag}, "status": {"healthy"}}); a.status != http.StatusConflict {
		t.Fatalf("stale hub edit: %d", a.status)
	}
	if a := b.post("/console/hubs/hub-a.example.com", url.Values{"etag": {h.ETag}, "weight": {"5000"}}); a.status != http.StatusBadRequest {
		t.Fatalf("bad weight: %d", a.status)
	}

	// Alert: acknowledged by the console's principal.
	_, page = b.get("/console/alerts")
	if a := b.post("/console/alerts/"+alert.ID+"/ack", url.Values{"etag": {etagOf(t, page)}}); a.status != http.StatusSeeOther {
		t.Fatalf("ack: %d %s", a.status, a.body)
	}
	if rec, _ := (&detect.Alerts{Backend: e.backend}).Get(ctx, alert.ID); rec.Status != detect.StatusAcknowledged || rec.AcknowledgedBy != "policy:"+ownerPolicy {
		t.Fatalf("alert after ack: %+v", rec)
	}

	// Registration: revoke with the record's ETag.
	_, page = b.get("/console/registrations/dev-7")
	if a := b.post("/console/registrations/dev-7/revoke", url.Values{"etag": {etagOf(t, page)}}); a.status != http.StatusBadRequest {
		t.Fatalf("revoke without confirmation: %d", a.status)
	}
	if a := b.post("/console/registrations/dev-7/revoke", url.Values{"etag": {"stale"}, "confirm": {"yes"}}); a.status != http.StatusConflict {
		t.Fatalf("stale revoke: %d", a.status)
	}
	if a := b.post("/console/registrations/dev-7/revoke", url.Values{"etag": {etagOf(t, page)}, "confirm": {"yes"}}); a.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	if _, err := e.uc.Registrations.Registration(ctx, "dev-7"); err == nil {
		t.Fatal("record still there after revoke")
	}
	// The hubs page shows its cached device count, then, once that is
	// stale, the count a background run makes.
	row := func(n int) string {
		return fmt.Sprintf("<td>hub-a.example.com</td><td>5</td><td>100</td>\n<td>draining</td><td>%d</td>", n)
	}
	if _, page := b.get("/console/hubs"); !strings.Contains(page, row(1)) {
		t.Fatalf("hubs page with the cached count:\n%s", page)
	}
	e.clock.Add(16 * time.Second)
	for i := 0; ; i++ {
		if _, page := b.get("/console/hubs"); strings.Contains(page, row(0)) {
			break
		}
		if i == 100 {
			t.Fatal("the hub's device count was never counted again")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// CA certificates: a refused certificate is a 400 with the reason.
	if a := b.post("/console/ca/certificates", url.Values{"name": {"ca1"}, "certificate": {"not a certificate"}}); a.status != http.StatusBadRequest {
		t.Fatalf("bad CA certificate: %d", a.status)
	}
}

func TestNoKeyOnAnyPage(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	ctx := context.Background()
	b.post("/console/enrollments", url.Values{"id": {"dev-1"}})
	b.post("/console/groups", url.Values{"id": {"g1"}})
	enr, _ := e.uc.Enrollments.Get(ctx, "dev-1")
	grp, _ := e.uc.Groups.Get(ctx, "g1")
	secrets := []string{enr.Attestation.SymmetricKey.PrimaryKey, enr.Attestation.SymmetricKey.SecondaryKey,
		grp.Attestation.SymmetricKey.PrimaryKey, grp.Attestation.SymmetricKey.SecondaryKey, policyKey}
	for _, p := range []string{"/console", "/console/enrollments", "/console/enrollments/dev-1", "/console/groups", "/console/groups/g1",
		"/console/groups/g1/delete", "/console/registrations", "/console/hubs", "/console/ca", "/console/audit", "/console/alerts"} {
		_, page := b.get(p)
		for _, s := range secrets {
			if shows(page, s) {
				t.Errorf("%s shows a key", p)
			}
		}
	}
}

// shows reports whether an HTML page shows s (html/template escapes "+"
// of base64 keys, so the text is compared unescaped).
func shows(page, s string) bool { return strings.Contains(html.UnescapeString(page), s) }

func regexpFind(s, expr string) string {
	m := regexpMust(expr).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestDashboardCountsTheTrail(t *testing.T) {
	e := newEnv(t, console.Config{})
	ctx := context.Background()
	b := e.signIn(ownerPolicy)
	record := func(evs ...audit.Event) {
		t.Helper()
		if err := e.backend.Update(ctx, func(tx store.Tx) error {
			for _, ev := range evs {
				if err := e.trail.Log.Record(ctx, tx, ev); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.trail.Log.Seal(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	now := e.clock.Now()
	ev := func(action, att string, ago time.Duration) audit.Event {
		return audit.Event{Time: now.Add(-ago), Action: action, Outcome: audit.OutcomeSuccess, Actor: "device", Details: map[string]string{"attestation": att}}
	}
	record(ev(audit.ActionRegistrationAssigned, "x509", time.Minute), ev(audit.ActionRegistrationAssigned, "x509", 2*time.Minute),
		ev(audit.ActionRegistrationRefused, "tpm", time.Minute), ev(audit.ActionRegistrationAssigned, "tpm", 5*time.Hour))
	_, page := b.get("/console")
	if !strings.Contains(page, "2 registrations.") || !strings.Contains(page, "<td>x509</td><td>2</td><td>0</td><td>0</td>") ||
		!strings.Contains(page, "<td>tpm</td><td>0</td><td>1</td><td>0</td>") {
		t.Fatalf("dashboard counts:\n%s", page)
	}
	// A later view counts only what was chained since, once.
	record(ev(audit.ActionRegistrationRenewed, "x509", 0))
	_, page = b.get("/console")
	if !strings.Contains(page, "3 registrations.") {
		t.Fatalf("dashboard after one more event:\n%s", page)
	}
	// Three hours on, those minutes have left the chart.
	e.clock.Add(4 * time.Hour)
	b = e.signIn(ownerPolicy)
	if _, page = b.get("/console"); !strings.Contains(page, "0 registrations.") {
		t.Fatalf("dashboard four hours later:\n%s", page)
	}
	// The posture panel fills once its background computation is done.
	for i := 0; ; i++ {
		if _, page = b.get("/console"); strings.Contains(page, `id="score"`) {
			break
		}
		if i == 100 {
			t.Fatal("no posture score on the dashboard")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A viewer sees none of the security operations panels.
	v := e.signIn(viewerPolicy)
	if _, page = v.get("/console"); strings.Contains(page, "Registrations per minute") || strings.Contains(page, `id="score"`) {
		t.Fatal("a viewer's dashboard shows security operations data")
	}
}

// ssoProvider stands in for internal/oidcauth at the seam: Begin
// redirects to the callback as a provider would after its sign-in, and
// Finish admits only the state Begin issued.
type ssoProvider struct{ state string }

func (s *ssoProvider) Begin(w http.ResponseWriter, r *http.Request) {
	s.state = "state-1"
	http.Redirect(w, r, "/console/sso/callback?state="+s.state, http.StatusFound)
}

func (s *ssoProvider) Finish(_ http.ResponseWriter, r *http.Request) (principal.Principal, error) {
	if r.URL.Query().Get("state") != s.state || s.state == "" {
		return principal.Principal{}, errors.New("bad state")
	}
	return principal.Principal{Kind: principal.KindUser, Name: "ana@example.com", Rights: []string{enrollment.RightEnrollmentRead}}, nil
}

func TestSSOStartsASession(t *testing.T) {
	e := newEnv(t, console.Config{SSO: &ssoProvider{}})
	b := e.browser()
	if _, page := b.get("/console/signin"); !strings.Contains(page, "Sign in with SSO") {
		t.Fatal("no SSO button on the sign-in page")
	}
	if st, _ := b.get("/console/sso/callback?state=forged"); st != http.StatusUnauthorized {
		t.Fatalf("callback without Begin: %d", st)
	}
	st, _ := b.get("/console/sso/login")
	if st != http.StatusFound {
		t.Fatalf("login: %d", st)
	}
	resp, err := b.c.Get(e.url("/console/sso/callback?state=state-1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console" {
		t.Fatalf("callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := b.get("/console/enrollments")
	if !strings.Contains(page, "user:ana@example.com") || strings.Contains(page, `id="create"`) {
		t.Fatal("the SSO user's session is not the viewer it should be")
	}
	if a := b.post("/console/enrollments", url.Values{"id": {"x"}}); a.status != http.StatusForbidden {
		t.Fatalf("SSO viewer's POST: %d", a.status)
	}
	// Without SSO the routes answer 404.
	e2 := newEnv(t, console.Config{})
	if st, _ := e2.browser().get("/console/sso/login"); st != http.StatusNotFound {
		t.Fatalf("SSO login without SSO: %d", st)
	}
}

func TestCAVerificationFlow(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	root := testpki.Issue(t, "Line 7 Root", true, nil)
	if a := b.post("/console/ca/certificates", url.Values{"name": {"line7"}, "certificate": {root.PEM()}}); a.status != http.StatusSeeOther {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	if a := b.post("/console/ca/certificates", url.Values{"name": {"line7"}, "certificate": {root.PEM()}}); a.status != http.StatusConflict {
		t.Fatalf("register again: %d", a.status)
	}
	a := b.post("/console/ca/certificates/line7/code", url.Values{})
	code := regexpFind(a.body, `Verification code for line7: <code>([^<]+)</code>`)
	if a.status != http.StatusOK || code == "" {
		t.Fatalf("verification code: %d %s", a.status, a.body)
	}
	// A proof not signed by the CA's key is refused; the right one verifies.
	other := testpki.Issue(t, "Someone Else", true, nil)
	if a := b.post("/console/ca/certificates/line7/verify", url.Values{"proof": {testpki.Issue(t, code, false, other).PEM()}}); a.status != http.StatusBadRequest {
		t.Fatalf("a proof from another key: %d", a.status)
	}
	if a := b.post("/console/ca/certificates/line7/verify", url.Values{"proof": {testpki.Issue(t, code, false, root).PEM()}}); a.status != http.StatusSeeOther {
		t.Fatalf("verify: %d %s", a.status, a.body)
	}
	c, err := e.uc.Certificates.CACertificate(context.Background(), "line7")
	if err != nil || !c.IsVerified {
		t.Fatalf("after verify: %+v %v", c, err)
	}
	_, page := b.get("/console/ca")
	if a := b.post("/console/ca/certificates/line7/delete", url.Values{"etag": {etagOf(t, page)}}); a.status != http.StatusBadRequest {
		t.Fatalf("delete without confirmation: %d", a.status)
	}
	if a := b.post("/console/ca/certificates/line7/delete", url.Values{"etag": {etagOf(t, page)}, "confirm": {"yes"}}); a.status != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
}

func TestCreateX509AndTPMEnrollments(t *testing.T) {
	e := newEnv(t, console.Config{})
	b := e.signIn(ownerPolicy)
	ctx := context.Background()
	root := testpki.Issue(t, "Fleet Root", true, nil)
	leaf := testpki.Issue(t, "cam-1", false, root)
	if a := b.post("/console/enrollments", url.Values{"id": {"cam-1"}, "attestation": {"x509"}, "certificate": {leaf.PEM()}}); a.status != http.StatusSeeOther {
		t.Fatalf("X.509 enrollment: %d %s", a.status, a.body)
	}
	got, err := e.uc.Enrollments.Get(ctx, "cam-1")
	if err != nil || got.Attestation.X509 == nil || got.Attestation.X509.ClientCertificates.Primary.Info.SubjectName != "CN=cam-1" {
		t.Fatalf("X.509 enrollment: %+v %v", got, err)
	}
	if _, page := b.get("/console/enrollments/cam-1"); !strings.Contains(page, "CN=cam-1") || strings.Contains(page, `id="reveal"`) {
		t.Fatal("X.509 enrollment page: no subject, or a reveal button without keys")
	}
	if a := b.post("/console/groups", url.Values{"id": {"fleet"}, "attestation": {"x509"}, "certificate": {root.PEM()}}); a.status != http.StatusSeeOther {
		t.Fatalf("X.509 group: %d %s", a.status, a.body)
	}
	if a := b.post("/console/enrollments", url.Values{"id": {"cam-2"}, "attestation": {"x509"}, "certificate": {"garbage"}}); a.status != http.StatusBadRequest {
		t.Fatalf("bad certificate: %d", a.status)
	}
	if a := b.post("/console/enrollments", url.Values{"id": {"tpm-1"}, "attestation": {"tpm"}, "endorsementKey": {"not base64!"}}); a.status != http.StatusBadRequest {
		t.Fatalf("bad endorsement key: %d", a.status)
	}
	if a := b.post("/console/groups", url.Values{"id": {"tpm-group"}, "attestation": {"tpm"}}); a.status != http.StatusBadRequest {
		t.Fatalf("TPM group: %d", a.status)
	}
}
