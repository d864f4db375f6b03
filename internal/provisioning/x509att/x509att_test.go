package x509att_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/internal/testpki"

	"github.com/zdps/zdps/allocation/hashed"
	x509v "github.com/zdps/zdps/attestation/x509"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/x509att"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

func x509Certs(c *testpki.Cert) *enrollment.X509Certificates {
	return &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: c.PEM()}}
}

func put[T store.Document](t *testing.T, c *store.Collection[T], v T) {
	t.Helper()
	if _, err := c.Put(context.Background(), v, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

// TestRegister runs the whole pipeline over bbolt with the store's X.509
// indexes: what a device gets, and that a refused device leaves nothing.
func TestRegister(t *testing.T) {
	ctx := context.Background()
	be := testbackend.Bolt(t)
	st := store.New(be, nil)

	root := testpki.Issue(t, "Root", true, nil)
	inter := testpki.Issue(t, "Intermediate", true, root)
	caRoot := testpki.Issue(t, "Registered CA", true, nil)
	unverified := testpki.Issue(t, "Unverified CA", true, nil)
	disabledRoot := testpki.Issue(t, "Disabled root", true, nil)
	stranger := testpki.Issue(t, "Stranger", true, nil)
	indLeaf := testpki.Issue(t, "dev-ind", false, nil)
	disabledLeaf := testpki.Issue(t, "dev-dis-ind", false, inter)

	x := func(a *enrollment.X509Attestation) *enrollment.AttestationMechanism {
		return &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: a}
	}
	put(t, st.Hubs, &enrollment.Hub{Name: "hub-a.example.net"})
	put(t, st.Enrollments, &enrollment.IndividualEnrollment{RegistrationID: "dev-ind", DeviceID: "device-ind", Spec: enrollment.Spec{Attestation: x(&enrollment.X509Attestation{ClientCertificates: x509Certs(indLeaf)})}})
	put(t, st.Enrollments, &enrollment.IndividualEnrollment{RegistrationID: "dev-dis-ind", Spec: enrollment.Spec{ProvisioningStatus: enrollment.StatusDisabled, Attestation: x(&enrollment.X509Attestation{ClientCertificates: x509Certs(disabledLeaf)})}})
	put(t, st.Enrollments, &enrollment.IndividualEnrollment{RegistrationID: "dev-dis-other", Spec: enrollment.Spec{ProvisioningStatus: enrollment.StatusDisabled, Attestation: x(&enrollment.X509Attestation{ClientCertificates: x509Certs(testpki.Issue(t, "dev-dis-other", false, stranger))})}})
	put(t, st.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g-root", Spec: enrollment.Spec{Attestation: x(&enrollment.X509Attestation{SigningCertificates: x509Certs(root)})}})
	put(t, st.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g-ca", Spec: enrollment.Spec{Attestation: x(&enrollment.X509Attestation{CAReferences: &enrollment.X509CAReferences{Primary: "my-ca"}})}})
	put(t, st.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g-unverified", Spec: enrollment.Spec{Attestation: x(&enrollment.X509Attestation{CAReferences: &enrollment.X509CAReferences{Primary: "not-yet"}})}})
	put(t, st.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g-disabled", Spec: enrollment.Spec{ProvisioningStatus: enrollment.StatusDisabled, Attestation: x(&enrollment.X509Attestation{SigningCertificates: x509Certs(disabledRoot)})}})
	put(t, st.CACertificates, &enrollment.CACertificate{Name: "my-ca", Certificate: caRoot.PEM(), IsVerified: true})
	put(t, st.CACertificates, &enrollment.CACertificate{Name: "not-yet", Certificate: unverified.PEM()})

	att, err := x509att.NewAttestor(st, x509v.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := provisioning.New(provisioning.Config{
		Store:     st,
		Attestors: map[string]port.Attestor{enrollment.AttestationX509: att},
		Allocator: hashed.New(),
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}

	chain := func(cs ...*testpki.Cert) []*x509.Certificate {
		out := make([]*x509.Certificate, len(cs))
		for i, c := range cs {
			out[i] = c.Cert
		}
		return out
	}
	cases := []struct {
		name, regID string
		chain       []*x509.Certificate
		wantStatus  string
		wantDevice  string
		wantGroup   string
		wantErr     []error
	}{
		{name: "individual self-signed leaf", regID: "dev-ind", chain: chain(indLeaf), wantStatus: enrollment.RegistrationAssigned, wantDevice: "device-ind"},
		{name: "leaf and intermediate under a signing root", regID: "dev-g1", chain: chain(testpki.Issue(t, "dev-g1", false, inter), inter), wantStatus: enrollment.RegistrationAssigned, wantDevice: "dev-g1", wantGroup: "g-root"},
		{name: "verified CA reference", regID: "dev-ca1", chain: chain(testpki.Issue(t, "dev-ca1", false, caRoot)), wantStatus: enrollment.RegistrationAssigned, wantDevice: "dev-ca1", wantGroup: "g-ca"},
		{name: "disabled individual matching the leaf, under an enabled group", regID: "dev-dis-ind", chain: chain(disabledLeaf, inter), wantStatus: enrollment.RegistrationDisabled},
		{name: "disabled individual, device proves the enabled group", regID: "dev-dis-other", chain: chain(testpki.Issue(t, "dev-dis-other", false, inter), inter), wantStatus: enrollment.RegistrationDisabled},
		{name: "disabled group", regID: "dev-dg", chain: chain(testpki.Issue(t, "dev-dg", false, disabledRoot)), wantStatus: enrollment.RegistrationDisabled},
		{name: "unverified CA", regID: "dev-unv", chain: chain(testpki.Issue(t, "dev-unv", false, unverified)), wantErr: []error{port.ErrUnauthorized, x509v.ErrCANotVerified}},
		{name: "unknown CA", regID: "dev-unk", chain: chain(testpki.Issue(t, "dev-unk", false, stranger)), wantErr: []error{port.ErrUnauthorized, x509v.ErrUnauthorized}},
		{name: "CN is not the registration ID", regID: "dev-x", chain: chain(testpki.Issue(t, "dev-y", false, inter), inter), wantErr: []error{port.ErrUnauthorized, x509v.ErrCNMismatch}},
		{name: "expired leaf", regID: "dev-old", chain: chain(testpki.Issue(t, "dev-old", false, inter, func(c *x509.Certificate) { c.NotAfter = time.Now().Add(-time.Minute) }), inter), wantErr: []error{port.ErrUnauthorized, x509v.ErrExpired}},
		{name: "no certificate and no key", regID: "dev-none", wantErr: []error{port.ErrUnauthorized}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op, err := svc.Register(ctx, &port.Request{IDScope: "0ne00000001", RegistrationID: tc.regID, ClientCertificates: tc.chain})
			if len(tc.wantErr) > 0 {
				for _, w := range tc.wantErr {
					if !errors.Is(err, w) {
						t.Fatalf("err = %v, want %v", err, w)
					}
				}
				if _, err := st.Registrations.Get(ctx, tc.regID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a refused device has a registration record (err %v)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if op.Status != tc.wantStatus {
				t.Fatalf("status %q, want %q", op.Status, tc.wantStatus)
			}
			if tc.wantStatus != enrollment.RegistrationAssigned {
				return
			}
			rec, err := st.Registrations.Get(ctx, tc.regID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.DeviceID != tc.wantDevice || rec.EnrollmentGroupID != tc.wantGroup || rec.AttestationType != enrollment.AttestationX509 || rec.AssignedHub != "hub-a.example.net" {
				t.Errorf("record %+v, want device %q group %q", rec, tc.wantDevice, tc.wantGroup)
			}
			// registrationState.x509: the presented leaf, and the anchor
			// (none when the enrollment lists the leaf itself).
			if rec.X509 == nil || rec.X509.CertificateInfo.SHA256Thumbprint != enrollment.CertificateInfo(tc.chain[0]).SHA256Thumbprint {
				t.Errorf("x509 summary %+v, want the leaf's", rec.X509)
			}
			anchors := map[string]string{"g-root": "CN=Root", "g-ca": "CN=Registered CA"}
			if signing := rec.X509.SigningCertificateInfo; (tc.wantGroup == "") != (signing == nil) || (signing != nil && signing.SubjectName != anchors[tc.wantGroup]) {
				t.Errorf("signingCertificateInfo %+v", signing)
			}
		})
	}

	// The index follows the group: once g-root no longer names the root,
	// its devices are refused.
	put(t, st.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g-root", Spec: enrollment.Spec{Attestation: x(&enrollment.X509Attestation{SigningCertificates: x509Certs(stranger)})}})
	_, err = svc.Register(ctx, &port.Request{RegistrationID: "dev-g2", ClientCertificates: chain(testpki.Issue(t, "dev-g2", false, inter), inter)})
	if !errors.Is(err, x509v.ErrUnauthorized) {
		t.Fatalf("after the group changed its root: err = %v, want unauthorized", err)
	}
}

type brokenVerifier struct{}

func (brokenVerifier) Verify(context.Context, string, []*x509.Certificate) (*x509v.Result, error) {
	return nil, errors.New("store down")
}

func TestLookupFailureIsAServerFault(t *testing.T) {
	a, err := x509att.New(brokenVerifier{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Attest(context.Background(), &port.Request{RegistrationID: "d"})
	if err == nil || errors.Is(err, port.ErrUnauthorized) {
		t.Fatalf("err = %v, want a server fault", err)
	}
	if _, err := x509att.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}
