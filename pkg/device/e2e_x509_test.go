package device_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// certKey is a certificate and its key.
type certKey struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

// issue makes a certificate for cn signed by parent (self-signed when nil).
func issue(t *testing.T, cn string, isCA bool, parent *certKey) *certKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: isCA,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, signerKey := tmpl, k
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, k.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &certKey{cert: c, key: k}
}

func (c *certKey) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}))
}

// tlsCert is the leaf with the given intermediates, as a device presents
// it.
func tlsCert(leaf *certKey, intermediates ...*certKey) *tls.Certificate {
	c := &tls.Certificate{Certificate: [][]byte{leaf.cert.Raw}, PrivateKey: leaf.key, Leaf: leaf.cert}
	for _, i := range intermediates {
		c.Certificate = append(c.Certificate, i.cert.Raw)
	}
	return c
}

func certs(c *certKey) *enrollment.X509Certificates {
	return &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: c.pem()}}
}

func TestRealServerX509(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	addHubs(t, srv, "hub-x.example.net")

	self := issue(t, "x509-ind-1", false, nil)
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "x509-ind-1", DeviceID: "x509-device-1",
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{ClientCertificates: certs(self)}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	root := issue(t, "Fleet Root", true, nil)
	inter := issue(t, "Fleet Intermediate", true, root)
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "x509-fleet",
		Attestation:       &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{SigningCertificates: certs(root)}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	stranger := issue(t, "Stranger Root", true, nil)

	cases := []struct {
		name       string
		cert       *tls.Certificate
		regID      string
		wantDevice string
		wantGroup  string
		want       error
	}{
		{"individual self-signed leaf", tlsCert(self), "", "x509-device-1", "", nil},
		{"leaf plus intermediate under a group", tlsCert(issue(t, "x509-grp-dev-1", false, inter), inter), "", "x509-grp-dev-1", "x509-fleet", nil},
		{"leaf signed by the group root directly", tlsCert(issue(t, "x509-grp-dev-2", false, root)), "x509-grp-dev-2", "x509-grp-dev-2", "x509-fleet", nil},
		{"unknown CA", tlsCert(issue(t, "x509-stranger", false, stranger)), "", "", "", device.ErrUnauthorized},
		{"CN differs from the registration ID", tlsCert(issue(t, "x509-grp-dev-3", false, inter), inter), "x509-grp-dev-4", "", "", device.ErrUnauthorized},
		{"leaf without its intermediate", tlsCert(issue(t, "x509-grp-dev-5", false, inter)), "", "", "", device.ErrUnauthorized},
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
