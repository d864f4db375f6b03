package interop

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// deviceFiles writes the device's chain (leaf first, then the given
// intermediates) and key as PEM files, as register.js takes them.
func deviceFiles(t *testing.T, leaf *testpki.Cert, intermediates ...*testpki.Cert) []string {
	t.Helper()
	dir := t.TempDir()
	var chain strings.Builder
	chain.WriteString(leaf.PEM())
	for _, c := range intermediates {
		chain.WriteString(c.PEM())
	}
	der, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "device.pem"), filepath.Join(dir, "device.key")
	if err := os.WriteFile(certFile, []byte(chain.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"CERT_FILE=" + certFile, "KEY_FILE=" + keyFile}
}

func x509Mechanism(a *enrollment.X509Attestation) *enrollment.AttestationMechanism {
	return &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: a}
}

func primaryCert(c *testpki.Cert) *enrollment.X509Certificates {
	return &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: c.PEM()}}
}

// TestNodeSDKX509 registers devices with the official Node.js SDK and
// azure-iot-security-x509 over TLS client authentication: an individual
// leaf, and leaf + intermediate under groups anchored by a signing
// certificate and by a CA certificate verified by proof of possession.
func TestNodeSDKX509(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	scope := srv.IDScope()
	hubs := []string{"hub-x1.example.net", "hub-x2.example.net"}
	addHubs(t, srv, hubs...)

	// (a) an individual enrollment with a self-signed device certificate.
	indLeaf := testpki.Issue(t, "node-x509-ind", false, nil)
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "node-x509-ind", DeviceID: "node-x509-device", Spec: enrollment.Spec{Attestation: x509Mechanism(&enrollment.X509Attestation{ClientCertificates: primaryCert(indLeaf)})},
	}, ""); err != nil {
		t.Fatal(err)
	}

	// (b) a group whose signing certificate is the root; devices send leaf
	// and intermediate.
	root := testpki.Issue(t, "zdps interop root", true, nil)
	inter := testpki.Issue(t, "zdps interop intermediate", true, root)
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "node-x509-signing", Spec: enrollment.Spec{Attestation: x509Mechanism(&enrollment.X509Attestation{SigningCertificates: primaryCert(root)})},
	}, ""); err != nil {
		t.Fatal(err)
	}

	// (c) a group referencing a CA certificate verified by proof of
	// possession through the service API.
	caRoot := testpki.Issue(t, "zdps interop registered CA", true, nil)
	caInter := testpki.Issue(t, "zdps interop registered CA intermediate", true, caRoot)
	if _, err := c.PutCertificate(ctx, "interop-ca", caRoot.PEM(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "node-x509-ca", Spec: enrollment.Spec{Attestation: x509Mechanism(&enrollment.X509Attestation{CAReferences: &enrollment.X509CAReferences{Primary: "interop-ca"}})},
	}, ""); err != nil {
		t.Fatal(err)
	}
	caLeaf := testpki.Issue(t, "node-x509-ca-dev", false, caInter)
	t.Run("unverified CA refused", func(t *testing.T) {
		res := nodeDevice(t, srv, scope, "node-x509-ca-dev", deviceFiles(t, caLeaf, caInter)...)
		if res.OK || res.StatusCode == nil || *res.StatusCode != 401 {
			t.Fatalf("want a 401 failure, got %+v", res)
		}
	})
	code, err := c.CertificateVerificationCode(ctx, "interop-ca")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyCertificate(ctx, "interop-ca", testpki.Issue(t, code.Code, false, caRoot).PEM()); err != nil {
		t.Fatal(err)
	}

	groupLeaf := testpki.Issue(t, "node-x509-grp-1", false, inter)
	cases := []struct {
		name, regID string
		files       []string
		wantDevice  string
	}{
		{"individual leaf", "node-x509-ind", deviceFiles(t, indLeaf), "node-x509-device"},
		{"leaf and intermediate under a signing certificate", "node-x509-grp-1", deviceFiles(t, groupLeaf, inter), "node-x509-grp-1"},
		{"leaf and intermediate under a verified CA", "node-x509-ca-dev", deviceFiles(t, caLeaf, caInter), "node-x509-ca-dev"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := nodeDevice(t, srv, scope, tc.regID, tc.files...)
			if !res.OK || res.Status != "assigned" {
				t.Fatalf("registration did not end assigned: %+v\nserver log:\n%s", res, srv.Logs())
			}
			if res.DeviceID != tc.wantDevice {
				t.Errorf("deviceId %q, want %q", res.DeviceID, tc.wantDevice)
			}
			rec, err := c.GetRegistration(ctx, tc.regID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.AssignedHub != res.AssignedHub || rec.DeviceID != res.DeviceID || rec.Status != enrollment.RegistrationAssigned {
				t.Errorf("device was told hub %q device %q, the record says %+v", res.AssignedHub, res.DeviceID, rec)
			}
			found := false
			for _, h := range hubs {
				found = found || h == res.AssignedHub
			}
			if !found {
				t.Errorf("assigned hub %q is not a linked hub", res.AssignedHub)
			}
		})
	}

	stranger := testpki.Issue(t, "nobody's CA", true, nil)
	refusals := []struct {
		name, regID string
		files       []string
	}{
		{"CN is not the registration ID", "node-x509-someone-else", deviceFiles(t, testpki.Issue(t, "node-x509-grp-2", false, inter), inter)},
		{"unknown CA", "node-x509-stranger", deviceFiles(t, testpki.Issue(t, "node-x509-stranger", false, stranger))},
		{"expired leaf", "node-x509-expired", deviceFiles(t, testpki.Issue(t, "node-x509-expired", false, inter, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
		}), inter)},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			res := nodeDevice(t, srv, scope, tc.regID, tc.files...)
			if res.OK || res.StatusCode == nil || *res.StatusCode != 401 {
				t.Fatalf("want a 401 failure, got %+v", res)
			}
			if _, err := c.GetRegistration(ctx, tc.regID); err == nil {
				t.Fatal("a refused device has a registration record")
			}
		})
	}

	t.Run("disabled enrollment", func(t *testing.T) {
		leaf := testpki.Issue(t, "node-x509-off", false, nil)
		if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
			RegistrationID: "node-x509-off", Spec: enrollment.Spec{ProvisioningStatus: enrollment.StatusDisabled,
				Attestation: x509Mechanism(&enrollment.X509Attestation{ClientCertificates: primaryCert(leaf)})},
		}, ""); err != nil {
			t.Fatal(err)
		}
		res := nodeDevice(t, srv, scope, "node-x509-off", deviceFiles(t, leaf)...)
		if res.OK || !strings.Contains(res.Error, "disabled") {
			t.Fatalf("want the SDK's disabled failure, got %+v", res)
		}
	})
}
