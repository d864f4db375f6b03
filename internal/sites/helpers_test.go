package sites

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/gatewaykey"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// backends are the engines the use cases are tested on.
var backends = []struct {
	name string
	open func(t testing.TB) store.Backend
}{
	{"memory", func(testing.TB) store.Backend { return memory.New() }},
	{"bolt", func(t testing.TB) store.Backend { return openBolt(t, filepath.Join(t.TempDir(), "zdps.db")) }},
	{"postgres", testbackend.Postgres},
}

func openBolt(t testing.TB, path string) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Check(); err != nil {
			t.Errorf("bolt check: %v", err)
		}
		_ = b.Close()
	})
	return b
}

var kek = func() []byte { k := make([]byte, 32); _, _ = rand.Read(k); return k }()

// env is central as zdps serve wires it, on one backend.
type env struct {
	t       testing.TB
	b       store.Backend
	st      *store.Store // the pipeline's: no audit, no feed
	audited *store.Store
	m       *manage.Service
	rev     *revocation.Revocations
	log     *audit.Log
	ca      *ca.CA
	svc     *Service
	ctx     context.Context
}

type testCA struct{ ca *ca.CA }

func (c testCA) SignSiteCA(csr []byte, site, gw string, v time.Duration) ([][]byte, string, time.Time, error) {
	is, err := c.ca.SignSiteCA(csr, ca.SiteCAPolicy{Site: site, Gateway: gw, Validity: v})
	if err != nil {
		return nil, "", time.Time{}, err
	}
	return is.Chain, is.Serial, is.Certificate.NotAfter, nil
}

// newEnv builds central on b; a CA stored on b is reused (a restart).
func newEnv(t testing.TB, b store.Backend) *env {
	t.Helper()
	box, err := sealed.New(kek)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := audit.New(audit.Config{Backend: b, Signer: &audit.KeySigner{Key: k}})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(b, nil, store.WithSealer(box))
	audited := store.New(audit.Changes(Feed(b), l), nil, store.WithSealer(box))
	rev, err := revocation.NewRevocations(st, revocation.RevocationConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manage.New(manage.Config{Store: audited, Revocations: rev})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(b), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: audited, Recorder: l, Revoker: rev, CA: testCA{authority}})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, b: b, st: st, audited: audited, m: m, rev: rev, log: l, ca: authority, svc: svc,
		ctx: audit.WithActor(context.Background(), "policy:test")}
}

func key(i int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "key-%028d", i))
}

func (e *env) putSite(name string, hubs ...string) {
	e.t.Helper()
	if _, err := e.svc.PutSite(e.ctx, &enrollment.Site{Name: name, Hubs: hubs}, store.Condition{}); err != nil {
		e.t.Fatal(err)
	}
}

// putEnrollment writes a symmetric-key enrollment through the management
// use cases.
func (e *env) putEnrollment(id, site string, mod ...func(*enrollment.IndividualEnrollment)) {
	e.t.Helper()
	en := &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key(1), SecondaryKey: key(2)}},
		Site: site,
	}}
	for _, f := range mod {
		f(en)
	}
	if err := en.Validate(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.m.IndividualEnrollments().Put(e.ctx, en, store.Condition{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) getEnrollment(id string) *enrollment.IndividualEnrollment {
	e.t.Helper()
	en, err := e.m.IndividualEnrollments().Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return en
}

func (e *env) putGroup(id, site string) {
	e.t.Helper()
	g := &enrollment.EnrollmentGroup{EnrollmentGroupID: id, Spec: enrollment.Spec{
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key(3), SecondaryKey: key(4)}},
		Site: site,
	}}
	if err := g.Validate(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.m.EnrollmentGroups().Put(e.ctx, g, store.Condition{}); err != nil {
		e.t.Fatal(err)
	}
}

// register does what the pipeline does for a device with a CSR: a
// certificate signed by central's CA, stored with the record in one
// transaction (through the pipeline's store: no audit, no feed).
func (e *env) register(id, group string, key crypto.Signer) *x509.Certificate {
	e.t.Helper()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		e.t.Fatal(err)
	}
	is, err := e.ca.SignCSR(csr, ca.LeafPolicy{RegistrationID: id, DeviceID: id})
	if err != nil {
		e.t.Fatal(err)
	}
	certs := revocation.Certificates(e.b, nil)
	err = e.b.Update(context.Background(), func(tx store.Tx) error {
		if _, err := certs.In(tx).Put(context.Background(), &enrollment.Certificate{Serial: is.Serial, RegistrationID: id, DeviceID: id,
			NotBefore: is.Certificate.NotBefore, NotAfter: is.Certificate.NotAfter, Chain: is.Chain}, store.Condition{}); err != nil {
			return err
		}
		_, err := e.st.Registrations.In(tx).Put(context.Background(), &enrollment.Registration{RegistrationID: id, DeviceID: id,
			AssignedHub: "hub.example.net", Status: enrollment.RegistrationAssigned, EnrollmentGroupID: group,
			CertificateSerials: []string{is.Serial}}, store.Condition{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return is.Certificate
}

// gateway enrolls and registers a gateway of site and authenticates it.
func (e *env) gateway(id, site string) (*Gateway, *ecdsa.PrivateKey) {
	e.t.Helper()
	e.putEnrollment(id, site, func(en *enrollment.IndividualEnrollment) {
		en.Capabilities = &enrollment.DeviceCapabilities{IoTEdge: true}
	})
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert := e.register(id, "", k)
	gw, err := e.svc.Authenticate(context.Background(), cert)
	if err != nil {
		e.t.Fatal(err)
	}
	return gw, k
}

// pullAll pulls from cursor until more is false.
func (e *env) pullAll(gw *Gateway, cursor string, limit int) ([]dps.Change, string) {
	e.t.Helper()
	var out []dps.Change
	for range 10_000 {
		p, err := e.svc.Pull(context.Background(), gw, cursor, limit)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, p.Changes...)
		cursor = p.Cursor
		if !p.More {
			return out, cursor
		}
	}
	e.t.Fatal("the feed never ends")
	return nil, ""
}

// siteCA gets a delegated CA for a new key of gw.
func (e *env) siteCA(gw *Gateway) (*x509.Certificate, crypto.Signer) {
	e.t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	chain, err := e.svc.IssueCA(context.Background(), gw, csr)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(chain[0])
	if err != nil {
		e.t.Fatal(err)
	}
	return c, k
}

// leaf is a device certificate as a gateway issues it.
func leaf(t testing.TB, issuer *x509.Certificate, issuerKey crypto.Signer, org, cn string) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{Organization: []string{org}, CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, k.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// pushed is a record as a gateway pushes it.
func pushed(id, etag string, created time.Time, cert *x509.Certificate) dps.GatewayRecord {
	st := enrollment.RegistrationState{RegistrationID: id, DeviceID: id, AssignedHub: "hub.plant.example.net",
		Status: enrollment.RegistrationAssigned, ETag: etag, CreatedDateTimeUTC: &created}
	b, _ := json.Marshal(st)
	r := dps.GatewayRecord{Registration: b, AttestationType: enrollment.AttestationSymmetricKey}
	if cert != nil {
		r.Certificate = base64.StdEncoding.EncodeToString(cert.Raw)
	}
	return r
}

// pending are the audit events recorded and not yet sealed.
func (e *env) pending() []audit.Event {
	e.t.Helper()
	var out []audit.Event
	err := e.b.View(context.Background(), func(tx store.Tx) error {
		items, err := tx.Scan(context.Background(), audit.BucketPending, "", "", 0)
		for _, it := range items {
			var ev audit.Event
			if err := json.Unmarshal(it.Value, &ev); err != nil {
				return err
			}
			out = append(out, ev)
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func opener(t testing.TB, k *ecdsa.PrivateKey) *gatewaykey.Opener {
	t.Helper()
	o, err := gatewaykey.NewOpener(k)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// gwCert is the stored client certificate of a registration.
func gwCert(t testing.TB, e *env, id string) *x509.Certificate {
	t.Helper()
	rec, err := e.st.Registrations.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := revocation.Certificates(e.b, nil).Get(context.Background(), rec.CertificateSerials[0])
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func bigOne() *big.Int { return big.NewInt(1) }
