package sites

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

func TestAuthenticate(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant")
			edge := func(en *enrollment.IndividualEnrollment) {
				en.Capabilities = &enrollment.DeviceCapabilities{IoTEdge: true}
			}
			cert := func(id, site string, mods ...func(*enrollment.IndividualEnrollment)) *x509.Certificate {
				e.putEnrollment(id, site, mods...)
				return e.register(id, "", mustKey(t))
			}
			good := cert("gw-ok", "plant", edge)
			notEdge := cert("dev-plain", "plant")
			noSite := cert("gw-nosite", "", edge)
			goneSite := cert("gw-gone", "nowhere", edge)
			disabled := cert("gw-off", "plant", edge)
			revoked := cert("gw-revoked", "plant", edge)
			deleted := cert("gw-deleted", "plant", edge)
			off := e.getEnrollment("gw-off")
			off.ProvisioningStatus = enrollment.StatusDisabled
			if _, err := e.st.Enrollments.Put(context.Background(), off, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			if err := e.b.Update(context.Background(), func(tx store.Tx) error {
				_, err := e.rev.RevokeRegistrationTx(context.Background(), tx, "gw-revoked", 1)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if err := e.st.Registrations.Delete(context.Background(), "gw-deleted", store.Condition{}); err != nil {
				t.Fatal(err)
			}
			// Signed by central's CA but never stored (not issued through
			// a registration): refused.
			csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "gw-ok"}}, mustKey(t))
			is, err := e.ca.SignCSR(csr, ca.LeafPolicy{RegistrationID: "gw-ok", DeviceID: "gw-ok"})
			if err != nil {
				t.Fatal(err)
			}
			unknown := is.Certificate
			// A group member with iotEdge is a gateway too.
			e.putGroup("edge-group", "plant")
			g, _ := e.st.Groups.Get(context.Background(), "edge-group")
			g.Capabilities = &enrollment.DeviceCapabilities{IoTEdge: true}
			if _, err := e.st.Groups.Put(context.Background(), g, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			member := e.register("gw-member", "edge-group", mustKey(t))
			rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
			e.putEnrollment("gw-rsa", "plant", edge)
			rsaCert := e.register("gw-rsa", "", rsaKey)
			altered := *good
			altered.Raw = append([]byte(nil), good.Raw...)
			altered.Raw[len(altered.Raw)-1] ^= 1

			for _, tc := range []struct {
				name string
				cert *x509.Certificate
				want error
				site string
			}{
				{"gateway", good, nil, "plant"},
				{"group member gateway", member, nil, "plant"},
				{"no certificate", nil, ErrUnauthorized, ""},
				{"altered certificate", &altered, ErrUnauthorized, ""},
				{"signed here, never issued to a registration", unknown, ErrUnauthorized, ""},
				{"revoked", revoked, ErrUnauthorized, ""},
				{"record deleted", deleted, ErrUnauthorized, ""},
				{"not iotEdge", notEdge, ErrForbidden, ""},
				{"no site", noSite, ErrForbidden, ""},
				{"site does not exist", goneSite, ErrForbidden, ""},
				{"enrollment disabled", disabled, ErrForbidden, ""},
				{"RSA key (no HPKE)", rsaCert, ErrForbidden, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					gw, err := e.svc.Authenticate(context.Background(), tc.cert)
					if !errors.Is(err, tc.want) {
						t.Fatalf("Authenticate = %v, want %v", err, tc.want)
					}
					if tc.want == nil && gw.Site != tc.site {
						t.Fatalf("site %q, want %q", gw.Site, tc.site)
					}
				})
			}
		})
	}
}

func TestIssueCA(t *testing.T) {
	e := newEnv(t, backends[1].open(t))
	e.putSite("plant")
	gw, _ := e.gateway("gw-1", "plant")
	sub, _ := e.siteCA(gw)
	if !sub.IsCA || !sub.MaxPathLenZero || sub.Subject.Organization[0] != "zdps-site-plant" {
		t.Fatalf("site CA %v", sub.Subject)
	}
	var found bool
	for _, ev := range e.pending() {
		if ev.Action == ActionSiteCAIssue && ev.Actor == "gateway:gw-1" && ev.Details["serial"] != "" {
			found = true
		}
	}
	if !found {
		t.Fatal("no siteca.issue event")
	}
	if _, err := e.svc.IssueCA(context.Background(), gw, []byte("junk")); err == nil {
		t.Fatal("junk CSR accepted")
	}
}

func TestRecordIngest(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant", "hub.plant.example.net")
			e.putSite("ship")
			gw, _ := e.gateway("gw-1", "plant")
			sub, subKey := e.siteCA(gw)
			e.putEnrollment("dev-1", "plant")
			e.putEnrollment("dev-2", "plant")
			e.putEnrollment("dev-ship", "ship")
			e.putGroup("line", "plant")
			now := time.Now().UTC()

			l1 := leaf(t, sub, subKey, "zdps-site-plant", "dev-1")
			res, err := e.svc.IngestRecords(context.Background(), gw, []dps.GatewayRecord{pushed("dev-1", "e1", now, l1)})
			if err != nil || res[0].Status != dps.RecordStored {
				t.Fatalf("first push = %+v, %v", res, err)
			}
			// The same etag again (a retry after a lost answer): duplicate.
			res, _ = e.svc.IngestRecords(context.Background(), gw, []dps.GatewayRecord{pushed("dev-1", "e1", now, l1)})
			if res[0].Status != dps.RecordDuplicate {
				t.Fatalf("second push = %+v", res)
			}
			rec, err := e.st.Registrations.Get(context.Background(), "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			st := rec.ServiceState()
			if st.Site != "plant" || st.Gateway != "gw-1" || !slices.Contains(rec.CertificateSerials, serialOf(l1)) {
				t.Fatalf("record %+v", st)
			}
			if revoked, err := e.rev.IsRevoked(context.Background(), serialOf(l1)); err != nil || revoked {
				t.Fatalf("certificate stored: revoked=%v err=%v", revoked, err)
			}
			// Deleting it centrally revokes it and tells the site.
			if err := e.m.DeleteRegistration(e.ctx, "dev-1", ""); err != nil {
				t.Fatal(err)
			}
			if revoked, _ := e.rev.IsRevoked(context.Background(), serialOf(l1)); !revoked {
				t.Fatal("central delete did not revoke the gateway's certificate")
			}

			otherKey := mustKey(t)
			group := pushed("dev-g", "e1", now, leaf(t, sub, subKey, "zdps-site-plant", "dev-g"))
			group.EnrollmentGroupID = "line"
			for _, tc := range []struct {
				name string
				rec  dps.GatewayRecord
				want string
				why  string
			}{
				{"group member", group, dps.RecordStored, ""},
				{"another site's O", pushed("dev-2", "e1", now, leaf(t, sub, subKey, "zdps-site-ship", "dev-2")), RecordRefused, "subject"},
				{"CN not the device", pushed("dev-2", "e1", now, leaf(t, sub, subKey, "zdps-site-plant", "dev-3")), RecordRefused, "subject"},
				{"not under its site CA", pushed("dev-2", "e1", now, leaf(t, selfCA(t, otherKey), otherKey, "zdps-site-plant", "dev-2")), RecordRefused, "not signed"},
				{"another site's enrollment", pushed("dev-ship", "e1", now, nil), RecordRefused, "not an enrollment"},
				{"no enrollment", pushed("dev-none", "e1", now, nil), RecordRefused, "no enrollment"},
				{"malformed", dps.GatewayRecord{Registration: []byte(`{"registrationId":"dev-2","bogus":1}`)}, RecordRefused, "unknown field"},
				{"no etag", pushed("dev-2", "", now, nil), RecordRefused, "etag"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res, err := e.svc.IngestRecords(context.Background(), gw, []dps.GatewayRecord{tc.rec})
					if err != nil {
						t.Fatal(err)
					}
					if res[0].Status != tc.want || !strings.Contains(res[0].Error, tc.why) {
						t.Fatalf("result %+v, want %s (%s)", res[0], tc.want, tc.why)
					}
				})
			}
			if _, err := e.svc.IngestRecords(context.Background(), gw, make([]dps.GatewayRecord, MaxRecordsPerPush+1)); !errors.Is(err, enrollment.ErrInvalid) {
				t.Fatalf("oversized push = %v", err)
			}
		})
	}
}

func serialOf(c *x509.Certificate) string {
	return fmt.Sprintf("%032x", c.SerialNumber)
}

func selfCA(t *testing.T, k *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: bigOne(), IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestConflictRule(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant")
			gw1, _ := e.gateway("gw-1", "plant")
			gw2, _ := e.gateway("gw-2", "plant")
			ca1, k1 := e.siteCA(gw1)
			ca2, k2 := e.siteCA(gw2)
			for _, id := range []string{"dev-central", "dev-early", "dev-two"} {
				e.putEnrollment(id, "plant")
			}
			_, cur := e.pullAll(gw1, "", 100)
			centralCert := e.register("dev-central", "", mustKey(t))
			e.register("dev-early", "", mustKey(t))
			det := detect.New(detect.Config{})
			alerts := func() []detect.Alert {
				var out []detect.Alert
				for _, ev := range e.pending() {
					out = append(out, det.Observe(&ev)...)
				}
				return out
			}

			// Registered at central first: central wins, the gateway's
			// certificate is revoked, the gateway is told.
			later := time.Now().Add(time.Hour)
			l := leaf(t, ca1, k1, "zdps-site-plant", "dev-central")
			res, _ := e.svc.IngestRecords(context.Background(), gw1, []dps.GatewayRecord{pushed("dev-central", "g1", later, l)})
			if r := res[0]; r.Status != dps.RecordConflict || r.Winner != "central" || !slices.Equal(r.Revoked, []string{serialOf(l)}) {
				t.Fatalf("conflict = %+v", r)
			}
			if revoked, _ := e.rev.IsRevoked(context.Background(), serialOf(l)); !revoked {
				t.Fatal("loser's certificate not revoked")
			}
			if revoked, _ := e.rev.IsRevoked(context.Background(), serialOf(centralCert)); revoked {
				t.Fatal("winner's certificate revoked")
			}
			as := alerts()
			if len(as) != 1 || as[0].Rule != detect.RuleClonedCredential || as[0].RegistrationID != "dev-central" {
				t.Fatalf("alerts %+v", as)
			}
			// The same push again: the same answer, no second alert.
			n := len(e.pending())
			res2, _ := e.svc.IngestRecords(context.Background(), gw1, []dps.GatewayRecord{pushed("dev-central", "g1", later, l)})
			if res2[0].Status != dps.RecordConflict || res2[0].Winner != "central" || len(e.pending()) != n {
				t.Fatalf("repeat = %+v, events %d → %d", res2[0], n, len(e.pending()))
			}

			// Registered at the gateway earlier than at central: the
			// gateway's wins, central's certificate is revoked.
			earlier := time.Now().Add(-time.Hour)
			res, _ = e.svc.IngestRecords(context.Background(), gw1, []dps.GatewayRecord{pushed("dev-early", "g1", earlier, leaf(t, ca1, k1, "zdps-site-plant", "dev-early"))})
			if r := res[0]; r.Status != dps.RecordConflict || r.Winner != "gw-1" || len(r.Revoked) != 1 {
				t.Fatalf("early conflict = %+v", r)
			}
			rec, _ := e.st.Registrations.Get(context.Background(), "dev-early")
			if rec.Gateway != "gw-1" {
				t.Fatalf("record kept by %q", rec.Gateway)
			}

			// Two gateways: the first registration wins.
			res, _ = e.svc.IngestRecords(context.Background(), gw1, []dps.GatewayRecord{pushed("dev-two", "a", earlier, leaf(t, ca1, k1, "zdps-site-plant", "dev-two"))})
			if res[0].Status != dps.RecordStored {
				t.Fatalf("gw-1 = %+v", res[0])
			}
			l2 := leaf(t, ca2, k2, "zdps-site-plant", "dev-two")
			res, _ = e.svc.IngestRecords(context.Background(), gw2, []dps.GatewayRecord{pushed("dev-two", "b", later, l2)})
			if r := res[0]; r.Status != dps.RecordConflict || r.Winner != "gw-1" {
				t.Fatalf("gw-2 = %+v", r)
			}
			if revoked, _ := e.rev.IsRevoked(context.Background(), serialOf(l2)); !revoked {
				t.Fatal("gw-2's certificate not revoked")
			}
			// The site's feed tells the gateways to revoke the losers.
			chs, _ := e.pullAll(gw1, cur, 100)
			var dels []string
			for _, c := range chs {
				if c.Kind == dps.ChangeRegistration {
					dels = append(dels, c.ID)
				}
			}
			if !slices.Equal(dels, []string{"dev-central", "dev-two"}) {
				t.Fatalf("registration deletes %v", dels)
			}
		})
	}
}

func TestAuditIngest(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.putSite("plant")
			gw, _ := e.gateway("gw-1", "plant")
			at := time.Now().UTC().Add(-time.Minute)
			evs := []dps.AuditEvent{
				{ID: "0001", Time: at, Action: audit.ActionRegistrationAssigned, Outcome: audit.OutcomeSuccess, Actor: "device", RegistrationID: "dev-1", Source: "10.0.0.1:5000"},
				{ID: "0002", Time: at, Action: audit.ActionRegistrationRefused, Outcome: audit.OutcomeRefused, Reason: "unauthorized", Actor: "device", RegistrationID: "dev-2"},
				{ID: "0003", Time: at, Action: "enrollment.update", Outcome: audit.OutcomeSuccess, Actor: "policy:local"},
			}
			res, err := e.svc.IngestAudit(context.Background(), gw, evs)
			if err != nil || res.Recorded != 3 || res.Duplicates != 0 {
				t.Fatalf("first = %+v, %v", res, err)
			}
			res, err = e.svc.IngestAudit(context.Background(), gw, append(evs, dps.AuditEvent{ID: "0004", Time: at, Action: "x", Outcome: "success", Actor: "device"}))
			if err != nil || res.Recorded != 1 || res.Duplicates != 3 {
				t.Fatalf("second = %+v, %v", res, err)
			}
			var got []audit.Event
			for _, ev := range e.pending() {
				if ev.Details["gatewayEventId"] != "" {
					got = append(got, ev)
				}
			}
			if len(got) != 4 {
				t.Fatalf("%d events recorded", len(got))
			}
			for _, ev := range got {
				if ev.Actor != "gateway:gw-1" || ev.Details["site"] != "plant" || ev.Details["gatewayEventId"] == "" || ev.Details["gatewayActor"] == "" {
					t.Fatalf("event %+v", ev)
				}
			}
			for name, bad := range map[string]dps.AuditEvent{
				"no id":      {Time: at, Action: "a", Outcome: "success", Actor: "device"},
				"bad id":     {ID: "a/b", Time: at, Action: "a", Outcome: "success", Actor: "device"},
				"no action":  {ID: "x1", Time: at, Outcome: "success", Actor: "device"},
				"no time":    {ID: "x2", Action: "a", Outcome: "success", Actor: "device"},
				"future":     {ID: "x3", Time: time.Now().Add(48 * time.Hour), Action: "a", Outcome: "success", Actor: "device"},
				"long field": {ID: "x4", Time: at, Action: strings.Repeat("a", 2000), Outcome: "success", Actor: "device"},
			} {
				if _, err := e.svc.IngestAudit(context.Background(), gw, []dps.AuditEvent{bad}); !errors.Is(err, enrollment.ErrInvalid) {
					t.Errorf("%s: %v, want a 400", name, err)
				}
			}
		})
	}
}

func TestStatusShownOnSite(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	e.putSite("plant")
	gw, _ := e.gateway("gw-1", "plant")
	sync, notAfter := time.Now().UTC().Truncate(time.Second), time.Now().Add(30*24*time.Hour).UTC().Truncate(time.Second)
	if err := e.svc.ReportStatus(context.Background(), gw, &dps.GatewayStatus{LastSync: &sync, Backlog: 7, CANotAfter: &notAfter, CASerial: "ab"}); err != nil {
		t.Fatal(err)
	}
	s, err := e.svc.Site(context.Background(), "plant")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Gateways) != 1 || s.Gateways[0].RegistrationID != "gw-1" || s.Gateways[0].Backlog != 7 || !s.Gateways[0].LastSync.Equal(sync) || s.Gateways[0].CASerial != "ab" {
		t.Fatalf("gateways %+v", s.Gateways)
	}
	if err := e.svc.ReportStatus(context.Background(), gw, &dps.GatewayStatus{Backlog: -1}); !errors.Is(err, enrollment.ErrInvalid) {
		t.Fatalf("negative backlog: %v", err)
	}
	_ = revocation.Certificates
	_ = elliptic.P256
}
