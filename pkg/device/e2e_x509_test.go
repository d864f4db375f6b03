package device_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/testpki"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// tlsCert is the leaf with the given intermediates, as a device presents
// it.
func tlsCert(leaf *testpki.Cert, intermediates ...*testpki.Cert) *tls.Certificate {
	c := &tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}
	for _, i := range intermediates {
		c.Certificate = append(c.Certificate, i.Cert.Raw)
	}
	return c
}

func certs(c *testpki.Cert) *enrollment.X509Certificates {
	return &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: c.PEM()}}
}

func TestRealServerX509(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	addHubs(t, srv, "hub-x.example.net")

	self := testpki.Issue(t, "x509-ind-1", false, nil)
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "x509-ind-1", DeviceID: "x509-device-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{ClientCertificates: certs(self)}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	root := testpki.Issue(t, "Fleet Root", true, nil)
	inter := testpki.Issue(t, "Fleet Intermediate", true, root)
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "x509-fleet", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{SigningCertificates: certs(root)}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	stranger := testpki.Issue(t, "Stranger Root", true, nil)

	cases := []struct {
		name       string
		cert       *tls.Certificate
		regID      string
		wantDevice string
		wantGroup  string
		want       error
	}{
		{"individual self-signed leaf", tlsCert(self), "", "x509-device-1", "", nil},
		{"leaf plus intermediate under a group", tlsCert(testpki.Issue(t, "x509-grp-dev-1", false, inter), inter), "", "x509-grp-dev-1", "x509-fleet", nil},
		{"leaf signed by the group root directly", tlsCert(testpki.Issue(t, "x509-grp-dev-2", false, root)), "x509-grp-dev-2", "x509-grp-dev-2", "x509-fleet", nil},
		{"unknown CA", tlsCert(testpki.Issue(t, "x509-stranger", false, stranger)), "", "", "", device.ErrUnauthorized},
		{"CN differs from the registration ID", tlsCert(testpki.Issue(t, "x509-grp-dev-3", false, inter), inter), "x509-grp-dev-4", "", "", device.ErrUnauthorized},
		{"leaf without its intermediate", tlsCert(testpki.Issue(t, "x509-grp-dev-5", false, inter)), "", "", "", device.ErrUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := device.Register(ctx, device.Config{
				Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: tc.regID, Certificate: tc.cert,
				RootCAs: srv.RootCAs(), GenerateKey: true, MaxWait: time.Minute,
			})
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("want %v, got %v", tc.want, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, srv.Logs())
			}
			if res.DeviceID != tc.wantDevice || res.EnrollmentGroupID != tc.wantGroup || res.AssignedHub != "hub-x.example.net" {
				t.Fatalf("result %+v", res)
			}
			verifyIssued(t, srv, res)
		})
	}
}
