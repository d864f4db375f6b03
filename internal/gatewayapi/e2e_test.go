package gatewayapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/gatewaykey"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// gwClient speaks the gateway API with a client certificate (or none).
type gwClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newGWClient(t *testing.T, s *zdpstest.Server, cert *tls.Certificate) *gwClient {
	cfg := s.TLSConfig()
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &gwClient{t: t, base: "https://" + s.Addr(), hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}}
}

func (c *gwClient) do(method, path string, body, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		var e dps.ErrorBody
		if err := json.Unmarshal(b, &e); err != nil || e.ErrorCode == 0 {
			c.t.Fatalf("%s %s: %d answer not in the DPS error format: %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func (c *gwClient) pullAll(cursor string) ([]dps.Change, string) {
	c.t.Helper()
	var out []dps.Change
	for range 100 {
		var p dps.ChangesPage
		if st := c.do(http.MethodGet, dps.GatewayPrefix+"/changes?limit=2&cursor="+cursor, nil, &p); st != http.StatusOK {
			c.t.Fatalf("changes: %d", st)
		}
		out, cursor = append(out, p.Changes...), p.Cursor
		if !p.More {
			return out, cursor
		}
	}
	c.t.Fatal("feed never ends")
	return nil, ""
}

// TestGatewayAPI: a gateway registers at a real zdps serve with the
// device SDK, gets its delegated CA, pulls its site's feed (keys sealed to
// it), pushes a record and its status; devices that are not gateways are
// refused; the cursor survives a restart.
func TestGatewayAPI(t *testing.T) {
	s := zdpstest.Start(t, "--site-ca-validity", "720h")
	ctx := context.Background()
	c := s.Client()
	if _, err := c.PutHub(ctx, &enrollment.Hub{Name: "hub.plant.example.net"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSite(ctx, &enrollment.Site{Name: "plant", Hubs: []string{"hub.plant.example.net"}}); err != nil {
		t.Fatal(err)
	}
	sym := func(id, site string, edge bool) []byte {
		t.Helper()
		en := &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{
			Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}},
			Site:        site}}
		if edge {
			en.Capabilities = &enrollment.DeviceCapabilities{IoTEdge: true}
		}
		if _, err := c.PutEnrollment(ctx, en, ""); err != nil {
			t.Fatal(err)
		}
		keys, err := c.EnrollmentKeys(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
		return k
	}
	register := func(id string, key []byte) tls.Certificate {
		t.Helper()
		res, err := device.Register(ctx, device.Config{Endpoint: s.Addr(), IDScope: s.IDScope(), RegistrationID: id,
			SymmetricKey: key, GenerateKey: true, RootCAs: s.RootCAs(), MaxWait: time.Minute})
		if err != nil {
			t.Fatalf("register %s: %v\n%s", id, err, s.Logs())
		}
		cert, err := res.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	gwCert := register("gw-1", sym("gw-1", "plant", true))
	plainCert := register("dev-plain", sym("dev-plain", "plant", false))
	devKey := sym("dev-a", "plant", false)
	// Assigning through the CLI's path (GET, set site, PUT) keeps the keys.
	sym("dev-b", "", false)

	gw := newGWClient(t, s, &gwCert)
	// Refusals: no certificate, a device that is no gateway.
	if st := newGWClient(t, s, nil).do(http.MethodGet, dps.GatewayPrefix+"/changes", nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("no certificate: %d", st)
	}
	if st := newGWClient(t, s, &plainCert).do(http.MethodGet, dps.GatewayPrefix+"/changes", nil, nil); st != http.StatusForbidden {
		t.Fatalf("not a gateway: %d", st)
	}
	// A request cannot name a site.
	if st := gw.do(http.MethodGet, dps.GatewayPrefix+"/changes?site=other", nil, nil); st != http.StatusBadRequest {
		t.Fatalf("changes naming a site: %d", st)
	}
	if st := gw.do(http.MethodPost, dps.GatewayPrefix+"/status", map[string]any{"backlog": 0, "site": "other"}, nil); st != http.StatusBadRequest {
		t.Fatalf("status with a site: %d", st)
	}

	// The delegated CA.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "gw-1 CA"}}, caKey)
	var caRes dps.GatewayCAResponse
	if st := gw.do(http.MethodPost, dps.GatewayPrefix+"/ca", dps.GatewayCARequest{CSR: base64.StdEncoding.EncodeToString(csr)}, &caRes); st != http.StatusOK {
		t.Fatalf("ca: %d\n%s", st, s.Logs())
	}
	if len(caRes.CertificateChain) != 3 {
		t.Fatalf("chain of %d", len(caRes.CertificateChain))
	}
	var chain []*x509.Certificate
	for _, b64 := range caRes.CertificateChain {
		der, _ := base64.StdEncoding.DecodeString(b64)
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, cert)
	}
	siteCA := chain[0]
	if !siteCA.IsCA || !siteCA.MaxPathLenZero || siteCA.NotAfter.After(time.Now().Add(721*time.Hour)) {
		t.Fatalf("site CA: CA %v pathlen0 %v notAfter %v", siteCA.IsCA, siteCA.MaxPathLenZero, siteCA.NotAfter)
	}
	if st := gw.do(http.MethodPost, dps.GatewayPrefix+"/ca", dps.GatewayCARequest{CSR: "AAAA"}, nil); st != http.StatusBadRequest {
		t.Fatalf("bad CSR: %d", st)
	}

	// The feed: a snapshot, the keys sealed to the gateway's TLS key.
	snap, cursor := gw.pullAll("")
	open, err := gatewaykey.NewOpener(gwCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ch := range snap {
		ids = append(ids, ch.Kind+":"+ch.ID)
		if ch.ID == "dev-a" {
			doc, err := open.OpenDocument(ch.Document, ch.Kind, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			e, err := enrollment.DecodeIndividualEnrollment(doc)
			if err != nil {
				t.Fatal(err)
			}
			if e.Attestation.SymmetricKey.PrimaryKey != base64.StdEncoding.EncodeToString(devKey) {
				t.Fatal("the opened key is not the enrollment's")
			}
		}
	}
	if fmt.Sprint(ids) != "[site:plant enrollment:dev-a enrollment:dev-plain]" { // gw-1 left when it got its CA
		t.Fatalf("snapshot %v", ids)
	}

	// Changes: a disable, an assignment made the way `zdps site assign` does.
	a, _ := c.GetEnrollment(ctx, "dev-a")
	a.ProvisioningStatus = enrollment.StatusDisabled
	a.RegistrationState = nil
	if _, err := c.PutEnrollment(ctx, a, a.ETag); err != nil {
		t.Fatal(err)
	}
	b, _ := c.GetEnrollment(ctx, "dev-b")
	b.Site, b.RegistrationState = "plant", nil
	if _, err := c.PutEnrollment(ctx, b, b.ETag); err != nil {
		t.Fatal(err)
	}
	chs, cursor := gw.pullAll(cursor)
	if len(chs) != 2 || chs[0].ID != "dev-a" || chs[1].ID != "dev-b" || chs[1].Op != dps.ChangeUpsert {
		t.Fatalf("changes %+v", chs)
	}
	doc, err := open.OpenDocument(chs[1].Document, chs[1].Kind, chs[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := enrollment.DecodeIndividualEnrollment(doc); err != nil || e.Attestation.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("dev-b after assignment lost its key: %v %s", err, doc)
	}

	// A record registered at the gateway.
	sym("dev-c", "plant", false)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: serial,
		Subject:   pkix.Name{Organization: []string{"zdps-site-plant"}, CommonName: "dev-c"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, siteCA, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().UTC()
	reg, _ := json.Marshal(enrollment.RegistrationState{RegistrationID: "dev-c", DeviceID: "dev-c", AssignedHub: "hub.plant.example.net",
		Status: "assigned", ETag: "gw-etag-1", CreatedDateTimeUTC: &created})
	push := dps.GatewayRecords{Records: []dps.GatewayRecord{{Registration: reg, Certificate: base64.StdEncoding.EncodeToString(leafDER), AttestationType: "symmetricKey"}}}
	for i, want := range []string{dps.RecordStored, dps.RecordDuplicate} {
		var res dps.GatewayRecordResults
		if st := gw.do(http.MethodPost, dps.GatewayPrefix+"/records", push, &res); st != http.StatusOK || res.Results[0].Status != want {
			t.Fatalf("push %d: %d %+v", i, st, res)
		}
	}
	rec, err := c.GetRegistration(ctx, "dev-c")
	if err != nil || rec.Site != "plant" || rec.Gateway != "gw-1" {
		t.Fatalf("central's record %+v, %v", rec, err)
	}

	// Audit events, idempotent.
	evs := dps.GatewayAudit{Events: []dps.AuditEvent{{ID: "gw1-0001", Time: created, Action: "registration.assigned", Outcome: "success", Actor: "device", RegistrationID: "dev-c"}}}
	for i, want := range []int{1, 0} {
		var res dps.GatewayAuditResult
		if st := gw.do(http.MethodPost, dps.GatewayPrefix+"/audit", evs, &res); st != http.StatusOK || res.Recorded != want {
			t.Fatalf("audit push %d: %d %+v", i, st, res)
		}
	}

	// Status, shown on the site.
	notAfter := siteCA.NotAfter
	if st := gw.do(http.MethodPost, dps.GatewayPrefix+"/status", dps.GatewayStatus{LastSync: &created, Backlog: 3, CANotAfter: &notAfter, CASerial: fmt.Sprintf("%x", siteCA.SerialNumber)}, nil); st != http.StatusNoContent {
		t.Fatalf("status: %d", st)
	}
	site, err := c.GetSite(ctx, "plant")
	if err != nil || len(site.Gateways) != 1 || site.Gateways[0].Backlog != 3 || site.Gateways[0].RegistrationID != "gw-1" {
		t.Fatalf("site %+v, %v", site, err)
	}

	// The cursor survives a restart of central.
	s.Restart()
	sym("dev-e", "plant", false)
	gw = newGWClient(t, s, &gwCert)
	chs, _ = gw.pullAll(cursor)
	if len(chs) != 2 || chs[0].ID != "dev-c" || chs[1].ID != "dev-e" {
		t.Fatalf("after restart %+v", chs)
	}

	// Deleting the gateway's registration revokes its certificate: refused.
	if err := c.DeleteRegistration(ctx, "gw-1", ""); err != nil {
		t.Fatal(err)
	}
	if st := gw.do(http.MethodGet, dps.GatewayPrefix+"/changes", nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("revoked gateway: %d", st)
	}
	// ... and withdraws its delegated CA: central's CRL lists it, so hubs
	// that check it refuse every leaf the gateway issued.
	resp, err := s.HTTPClient().Get("https://" + s.Addr() + "/crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	var listed bool
	for _, e := range crl.RevokedCertificateEntries {
		listed = listed || e.SerialNumber.Cmp(siteCA.SerialNumber) == 0
	}
	if !listed {
		t.Fatal("the withdrawn site CA is not on central's CRL")
	}
}
