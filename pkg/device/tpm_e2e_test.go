package device_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/tpmsim"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

func tpmEnrollment(t *testing.T, srv *zdpstest.Server, regID string, ek []byte) {
	t.Helper()
	if _, err := srv.Client().PutEnrollment(context.Background(), &enrollment.IndividualEnrollment{
		RegistrationID: regID,
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM,
			TPM: &enrollment.TPMAttestation{EndorsementKey: base64.StdEncoding.EncodeToString(ek)}},
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
