package renewal_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/hashed"
	x509v "github.com/zdps/zdps/attestation/x509"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/renewal"
	"github.com/zdps/zdps/internal/provisioning/x509att"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// keyAttestor stands in for symmetric keys: Authorization "individual"
// proves the individual enrollment of the registration ID, "group:<id>"
// the group.
type keyAttestor struct{ st *store.Store }

func (k keyAttestor) Attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	id := &port.Identity{Type: enrollment.AttestationSymmetricKey, RegistrationID: req.RegistrationID}
	var err error
	switch {
	case req.Authorization == "individual":
		id.Enrollment, err = k.st.Enrollments.Get(ctx, req.RegistrationID)
	case strings.HasPrefix(req.Authorization, "group:"):
		id.Group, err = k.st.Groups.Get(ctx, strings.TrimPrefix(req.Authorization, "group:"))
	default:
		err = errors.New("bad key")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", port.ErrUnauthorized, err)
	}
	return id, nil
}

type env struct {
	st   *store.Store
	ca   *ca.CA
	svc  *provisioning.Service
	walk *x509att.Attestor
	logs *bytes.Buffer
	mu   sync.Mutex
	now  time.Time
}

func (e *env) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

func put[T store.Document](t *testing.T, c *store.Collection[T], v T) {
	t.Helper()
	if _, err := c.Put(context.Background(), v, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// newEnv is a pipeline over bbolt with the embedded CA, a key attestor and
// the renewal attestor (walking X.509 enrollments for other chains).
// Enrollments: individual dev-a (device ID dev-b), individual dev-c, a
// symmetric-key group g-sym, and an X.509 group g-zdps whose signing
// certificate is zdps's own intermediate.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	be := testbackend.Bolt(t)
	e := &env{now: time.Now().UTC(), logs: &bytes.Buffer{}}
	e.st = store.New(be, e.clock)
	var err error
	e.ca, err = ca.New(ctx, ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := caissuer.New(e.ca)
	if err != nil {
		t.Fatal(err)
	}
	e.walk, err = x509att.NewAttestor(e.st, x509v.Config{Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	ren, err := renewal.New(renewal.Config{Store: e.st, CA: e.ca, Walk: e.walk, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = provisioning.New(provisioning.Config{
		Store: e.st,
		Attestors: map[string]port.Attestor{
			enrollment.AttestationSymmetricKey: keyAttestor{e.st},
			enrollment.AttestationX509:         ren,
		},
		Allocator:           hashed.New(),
		Issuer:              iss,
		Logger:              slog.New(slog.NewJSONHandler(e.logs, nil)),
		Now:                 e.clock,
		CertificateValidity: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	put(t, e.st.Hubs, &enrollment.Hub{Name: "hub-1.example.net"})
	put(t, e.st.Hubs, &enrollment.Hub{Name: "hub-2.example.net"})
	sym := &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}
	put(t, e.st.Enrollments, &enrollment.IndividualEnrollment{RegistrationID: "dev-a", DeviceID: "dev-b", Spec: enrollment.Spec{Attestation: sym}})
	put(t, e.st.Enrollments, &enrollment.IndividualEnrollment{RegistrationID: "dev-c", Spec: enrollment.Spec{Attestation: sym}})
	put(t, e.st.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g-sym", Spec: enrollment.Spec{Attestation: sym}})
	put(t, e.st.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g-zdps", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
		Type: enrollment.AttestationX509,
		X509: &enrollment.X509Attestation{SigningCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: pemOf(e.ca.Intermediate())}}},
	}}})
	return e
}

func csrFor(t *testing.T, cn string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// first registers regID with a key credential and a CSR and returns the
// issued leaf.
func (e *env) first(t *testing.T, regID, auth string) *x509.Certificate {
	t.Helper()
	op, err := e.svc.Register(context.Background(), &port.Request{RegistrationID: regID, Authorization: auth, CSR: csrFor(t, regID)})
	if err != nil || op.Status != enrollment.RegistrationAssigned || len(op.IssuedCertificateChain) == 0 {
		t.Fatalf("first registration of %s: %v %+v", regID, err, op)
	}
	c, err := x509.ParseCertificate(op.IssuedCertificateChain[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// renew presents leaf (with zdps's intermediate) for regID.
func (e *env) renew(regID string, leaf *x509.Certificate, csr []byte) (*enrollment.Operation, error) {
	return e.svc.Register(context.Background(), &port.Request{
		RegistrationID:     regID,
		ClientCertificates: []*x509.Certificate{leaf, e.ca.Intermediate()},
		CSR:                csr,
	})
}

func serial(c *x509.Certificate) string { return fmt.Sprintf("%032x", c.SerialNumber) }

func TestRenewal(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// run returns the result of the request under test.
		run func(t *testing.T, e *env) (*enrollment.Operation, error)
		// want is the error (errors.Is); nil means assigned unless status
		// says otherwise.
		want   error
		status string
		reason string
	}{
		{name: "individual enrollment, device ID other than registration ID", status: enrollment.RegistrationAssigned,
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				old := e.first(t, "dev-a", "individual")
				if old.Subject.CommonName != "dev-b" {
					t.Fatalf("CN %q, want the device ID", old.Subject.CommonName)
				}
				before, _ := e.st.Registrations.Get(ctx, "dev-a")
				op, err := e.renew("dev-a", old, csrFor(t, "dev-a"))
				if err != nil {
					return op, err
				}
				rec, err := e.st.Registrations.Get(ctx, "dev-a")
				if err != nil {
					t.Fatal(err)
				}
				nc, _ := x509.ParseCertificate(op.IssuedCertificateChain[0])
				switch {
				case serial(nc) == serial(old):
					t.Error("same serial")
				case rec.DeviceID != "dev-b" || nc.Subject.CommonName != "dev-b":
					t.Errorf("device ID %q, CN %q", rec.DeviceID, nc.Subject.CommonName)
				case rec.AssignedHub != before.AssignedHub || rec.Substatus != before.Substatus:
					t.Errorf("hub %s/%s, was %s/%s", rec.AssignedHub, rec.Substatus, before.AssignedHub, before.Substatus)
				case len(rec.CertificateSerials) != 2 || rec.CertificateSerials[1] != serial(nc):
					t.Errorf("serials %v", rec.CertificateSerials)
				case rec.AttestationType != enrollment.AttestationX509 || rec.X509 == nil ||
					rec.X509.CertificateInfo.SHA256Thumbprint != enrollment.CertificateInfo(old).SHA256Thumbprint ||
					rec.X509.SigningCertificateInfo.SubjectName != e.ca.Intermediate().Subject.String():
					t.Errorf("x509 summary %+v", rec.X509)
				}
				for _, c := range []*x509.Certificate{old, nc} {
					if _, err := e.svc.Certificates().Get(ctx, serial(c)); err != nil {
						t.Errorf("certificate %s not stored: %v", serial(c), err)
					}
				}
				// The new certificate renews again.
				if _, err := e.renew("dev-a", nc, csrFor(t, "dev-a")); err != nil {
					t.Errorf("renewal with the renewed certificate: %v", err)
				}
				return op, nil
			}},
		{name: "group member keeps its group", status: enrollment.RegistrationAssigned,
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				op, err := e.renew("grp-1", e.first(t, "grp-1", "group:g-sym"), csrFor(t, "grp-1"))
				if err == nil && op.Registration.EnrollmentGroupID != "g-sym" {
					t.Errorf("group %q", op.Registration.EnrollmentGroupID)
				}
				return op, err
			}},
		{name: "no CSR", want: port.ErrInvalid, reason: "renewal without a CSR",
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				op, err := e.renew("dev-c", e.first(t, "dev-c", "individual"), nil)
				if !errors.Is(err, provisioning.ErrRenewalNeedsCSR) {
					t.Errorf("%v, want ErrRenewalNeedsCSR", err)
				}
				return op, err
			}},
		{name: "certificate of another registration", want: renewal.ErrNotIssued, reason: "operational certificate issued to another registration",
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				e.first(t, "dev-c", "individual")
				return e.renew("dev-c", e.first(t, "dev-a", "individual"), csrFor(t, "dev-c"))
			}},
		{name: "X.509 group anchored at zdps never admits a zdps-issued certificate of another device", want: renewal.ErrNotIssued,
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				leaf := e.first(t, "dev-a", "individual") // CN dev-b
				req := &port.Request{RegistrationID: "dev-b", ClientCertificates: []*x509.Certificate{leaf, e.ca.Intermediate()}, CSR: csrFor(t, "dev-b")}
				// The enrollment walk alone would admit it under g-zdps:
				// the routing is what stops it.
				if id, err := e.walk.Attest(ctx, req); err != nil || id.Group == nil || id.Group.EnrollmentGroupID != "g-zdps" {
					t.Fatalf("walk alone: %v %+v (the test no longer shows the threat)", err, id)
				}
				op, err := e.svc.Register(ctx, req)
				if _, gerr := e.st.Registrations.Get(ctx, "dev-b"); !errors.Is(gerr, store.ErrNotFound) {
					t.Errorf("a record for dev-b exists: %v", gerr)
				}
				return op, err
			}},
		{name: "revoked", want: renewal.ErrRevoked, reason: "certificate revoked",
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				leaf := e.first(t, "dev-c", "individual")
				c, err := e.svc.Certificates().Get(ctx, serial(leaf))
				if err != nil {
					t.Fatal(err)
				}
				at := e.clock()
				c.RevokedAt = &at
				put(t, e.svc.Certificates(), c)
				return e.renew("dev-c", leaf, csrFor(t, "dev-c"))
			}},
		{name: "expired", want: renewal.ErrExpired, reason: "operational certificate expired or not yet valid",
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				leaf := e.first(t, "dev-c", "individual")
				e.advance(2 * time.Hour)
				return e.renew("dev-c", leaf, csrFor(t, "dev-c"))
			}},
		{name: "registration deleted", want: renewal.ErrNoRegistration, reason: "registration record deleted",
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				leaf := e.first(t, "dev-c", "individual")
				if err := e.st.Registrations.Delete(ctx, "dev-c", store.Condition{}); err != nil {
					t.Fatal(err)
				}
				return e.renew("dev-c", leaf, csrFor(t, "dev-c"))
			}},
		{name: "registration deleted and re-created", want: renewal.ErrNoRegistration,
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				leaf := e.first(t, "dev-c", "individual")
				if err := e.st.Registrations.Delete(ctx, "dev-c", store.Condition{}); err != nil {
					t.Fatal(err)
				}
				e.first(t, "dev-c", "individual")
				return e.renew("dev-c", leaf, csrFor(t, "dev-c"))
			}},
		{name: "enrollment deleted", want: renewal.ErrNoEnrollment,
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				leaf := e.first(t, "dev-c", "individual")
				if err := e.st.Enrollments.Delete(ctx, "dev-c", store.Condition{}); err != nil {
					t.Fatal(err)
				}
				return e.renew("dev-c", leaf, csrFor(t, "dev-c"))
			}},
		{name: "enrollment disabled", status: enrollment.RegistrationDisabled,
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				leaf := e.first(t, "dev-c", "individual")
				en, _ := e.st.Enrollments.Get(ctx, "dev-c")
				en.ProvisioningStatus = enrollment.StatusDisabled
				put(t, e.st.Enrollments, en)
				return e.renew("dev-c", leaf, csrFor(t, "dev-c"))
			}},
		{name: "signed by zdps but never recorded", want: renewal.ErrNotIssued, reason: "operational certificate not recorded as issued",
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				e.first(t, "dev-c", "individual")
				is, err := e.ca.SignCSR(csrFor(t, "dev-c"), ca.LeafPolicy{RegistrationID: "dev-c", DeviceID: "dev-c"})
				if err != nil {
					t.Fatal(err)
				}
				return e.renew("dev-c", is.Certificate, csrFor(t, "dev-c"))
			}},
		{name: "zdps's issuer name without its signature goes to the enrollment walk", want: x509v.ErrUnauthorized,
			run: func(t *testing.T, e *env) (*enrollment.Operation, error) {
				e.first(t, "dev-c", "individual")
				k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				fakeCA := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: e.ca.Intermediate().Subject, NotBefore: e.clock().Add(-time.Hour), NotAfter: e.clock().Add(time.Hour),
					IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "dev-c"}, NotBefore: e.clock().Add(-time.Hour), NotAfter: e.clock().Add(time.Hour),
					KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, fakeCA, k.Public(), k)
				if err != nil {
					t.Fatal(err)
				}
				leaf, _ := x509.ParseCertificate(der)
				if renewal.IssuedByZDPS(leaf, e.ca.Intermediate()) {
					t.Fatal("a forged issuer name counts as zdps's")
				}
				return e.renew("dev-c", leaf, csrFor(t, "dev-c"))
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			op, err := tc.run(t, e)
			switch {
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if tc.reason != "" && !strings.Contains(e.logs.String(), `"reason":"`+tc.reason+`"`) {
					t.Errorf("the log lacks the reason %q:\n%s", tc.reason, e.logs)
				}
			case err != nil:
				t.Fatalf("err = %v", err)
			case op.Status != tc.status:
				t.Fatalf("status %s, want %s", op.Status, tc.status)
			}
		})
	}
}

// TestRefusedRenewalStoresNothing: a refused renewal leaves the records as
// they were (no certificate, no record change).
func TestRefusedRenewalStoresNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	leaf := e.first(t, "dev-c", "individual")
	e.first(t, "dev-a", "individual")
	before, _ := e.st.Registrations.Get(ctx, "dev-c")
	if _, err := e.renew("dev-c", leaf, nil); !errors.Is(err, port.ErrInvalid) {
		t.Fatal(err)
	}
	other, _ := e.st.Registrations.Get(ctx, "dev-a")
	if _, err := e.renew("dev-a", leaf, csrFor(t, "dev-a")); !errors.Is(err, port.ErrUnauthorized) {
		t.Fatal(err)
	}
	after, _ := e.st.Registrations.Get(ctx, "dev-c")
	otherAfter, _ := e.st.Registrations.Get(ctx, "dev-a")
	if after.ETag != before.ETag || otherAfter.ETag != other.ETag {
		t.Error("a refused renewal changed a record")
	}
	all, _, err := e.svc.Certificates().List(ctx, "", 100)
	if err != nil || len(all) != 2 {
		t.Errorf("%d certificates stored (%v), want 2", len(all), err)
	}
}

func TestNewValidates(t *testing.T) {
	st := store.New(memory.New(), nil)
	c, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  renewal.Config
		ok   bool
	}{
		{"good", renewal.Config{Store: st, CA: c}, true},
		{"no store", renewal.Config{CA: c}, false},
		{"no CA", renewal.Config{Store: st}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := renewal.New(tc.cfg); (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
