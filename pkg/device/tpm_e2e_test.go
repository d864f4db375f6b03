package device_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/internal/tpmsim"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

func tpmEnrollment(t *testing.T, srv *zdpstest.Server, regID string, ek []byte) {
	t.Helper()
	if _, err := srv.Client().PutEnrollment(context.Background(), &enrollment.IndividualEnrollment{
		RegistrationID: regID, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM,
			TPM: &enrollment.TPMAttestation{EndorsementKey: base64.StdEncoding.EncodeToString(ek)}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
}

// TestRealServerTPM registers a simulated TPM (the in-process reference
// simulator) against zdps serve, both answer modes, twice each.
func TestRealServerTPM(t *testing.T) {
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"direct 200", nil}, {"Azure 202 and polls", []string{"--azure-202"}}} {
		t.Run(mode.name, func(t *testing.T) {
			srv := zdpstest.Start(t, mode.flags...)
			addHubs(t, srv, "hub-tpm.example.net")
			d, err := device.NewTPM(tpmsim.Open(t))
			if err != nil {
				t.Fatal(err)
			}
			tpmEnrollment(t, srv, d.RegistrationID(), d.EndorsementKey())
			cfg := device.Config{Endpoint: srv.Addr(), IDScope: srv.IDScope(), TPM: d, RootCAs: srv.RootCAs(), GenerateKey: true}
			for i := range 2 {
				res, err := device.Register(context.Background(), cfg)
				if err != nil {
					t.Fatalf("registration %d: %v", i, err)
				}
				if res.RegistrationID != d.RegistrationID() || res.AssignedHub != "hub-tpm.example.net" || res.DeviceID != d.RegistrationID() {
					t.Fatalf("registration %d: %+v", i, res)
				}
				verifyIssued(t, srv, res)
			}
			// The key the service sent last is in the TPM.
			if _, err := d.SignWithIdentity([]byte("x")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRealServerTPMRefusals(t *testing.T) {
	srv := zdpstest.Start(t)
	addHubs(t, srv, "hub-tpm.example.net")
	d, err := device.NewTPM(tpmsim.Open(t))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	tpmEnrollment(t, srv, d.RegistrationID(), tpm.EKTemplatePublic(&k.PublicKey))
	cfg := device.Config{Endpoint: srv.Addr(), IDScope: srv.IDScope(), TPM: d, RootCAs: srv.RootCAs()}
	if _, err := device.Register(context.Background(), cfg); !errors.Is(err, device.ErrUnauthorized) {
		t.Fatalf("wrong EK: %v, want ErrUnauthorized", err)
	}
	cfg.RegistrationID = "not-enrolled"
	if _, err := device.Register(context.Background(), cfg); !errors.Is(err, device.ErrUnauthorized) {
		t.Fatalf("no enrollment: %v, want ErrUnauthorized", err)
	}
}

// TestRealServerEKCertificate: zdps serve with TPM manufacturer roots and
// --tpm-ek-required=false. An enrollment that requires an EK certificate
// refuses the device without one and with a forged one, and takes the
// device's own (TPMEKCertificate) or the one uploaded with the enrollment;
// an uploaded certificate from another manufacturer is refused when the
// enrollment is written.
func TestRealServerEKCertificate(t *testing.T) {
	manufacturer := testpki.Issue(t, "TPM Manufacturer Root", true, nil)
	stranger := testpki.Issue(t, "Unknown Manufacturer", true, nil)
	roots := filepath.Join(t.TempDir(), "manufacturers.pem")
	if err := os.WriteFile(roots, []byte(manufacturer.PEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := zdpstest.Start(t, "--tpm-ek-roots", roots, "--tpm-ek-required=false")
	addHubs(t, srv, "hub-tpm.example.net")
	sim := tpmsim.Open(t)
	d, err := device.NewTPM(sim)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := tpm.ParseEK(d.EndorsementKey())
	if err != nil {
		t.Fatal(err)
	}
	good := testpki.EKCertificate(t, manufacturer, ek.Key, time.Now().Add(24*time.Hour))
	forged := testpki.EKCertificate(t, stranger, ek.Key, time.Now().Add(24*time.Hour))
	put := func(cert []byte) error {
		a := &enrollment.TPMAttestation{EndorsementKey: base64.StdEncoding.EncodeToString(d.EndorsementKey()), RequireEndorsementKeyCertificate: true}
		if cert != nil {
			a.EndorsementKeyCertificate = base64.StdEncoding.EncodeToString(cert)
		}
		_, err := srv.Client().PutEnrollment(context.Background(), &enrollment.IndividualEnrollment{RegistrationID: d.RegistrationID(), Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: a}}}, "")
		return err
	}
	register := func(cert []byte) error {
		_, err := device.Register(context.Background(), device.Config{Endpoint: srv.Addr(), IDScope: srv.IDScope(), TPM: d, RootCAs: srv.RootCAs(), TPMEKCertificate: cert})
		return err
	}

	if err := put(forged); err == nil || !strings.Contains(err.Error(), "attestation.tpm.endorsementKeyCertificate") {
		t.Fatalf("enrollment with another manufacturer's EK certificate: %v, want refused", err)
	}
	if err := put(nil); err != nil {
		t.Fatal(err)
	}
	if err := register(nil); !errors.Is(err, device.ErrUnauthorized) {
		t.Fatalf("required and none: %v, want ErrUnauthorized", err)
	}
	if err := register(forged); !errors.Is(err, device.ErrUnauthorized) {
		t.Fatalf("forged: %v, want ErrUnauthorized", err)
	}
	if err := register(good); err != nil {
		t.Fatalf("the device's own certificate: %v", err)
	}
	if err := put(good); err != nil {
		t.Fatal(err)
	}
	if err := register(nil); err != nil {
		t.Fatalf("the enrollment's certificate: %v", err)
	}

	// The manufacturer's certificate in the TPM's NV memory, read by the
	// device and sent (the enrollment again requires one and has none).
	if _, err := d.EKCertificate(); !errors.Is(err, device.ErrNoEKCertificate) {
		t.Fatalf("EKCertificate of a TPM without one: %v", err)
	}
	if len(good) <= 512 {
		t.Fatalf("the certificate (%d bytes) fits one NV read: chunked reads go untested", len(good))
	}
	tpmsim.StoreEKCertificate(t, sim, good)
	fromNV, err := d.EKCertificate()
	if err != nil || !bytes.Equal(fromNV, good) {
		t.Fatalf("EKCertificate = %d bytes, %v; want the %d stored", len(fromNV), err, len(good))
	}
	if err := put(nil); err != nil {
		t.Fatal(err)
	}
	if err := register(fromNV); err != nil {
		t.Fatalf("the certificate from NV: %v", err)
	}
	if !srv.LogContains("EK certificate refused") {
		t.Errorf("the refusals are not in the log:\n%s", srv.Logs())
	}
}
