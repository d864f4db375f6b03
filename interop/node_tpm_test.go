package interop

import (
	"context"
	"encoding/base64"
	"strconv"
	"testing"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/cakms/cakmstest"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/interop/tpmbridge"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// swtpm starts Debian's swtpm on a fresh state directory (a new,
// unprovisioned TPM) behind a bridge to the Microsoft simulator protocol,
// and returns the bridge's command port.
func swtpm(t *testing.T) int {
	t.Helper()
	sock, _ := cakmstest.SWTPMSocket(t)
	b, err := tpmbridge.Start("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Port
}

type nodeTPMResult struct {
	nodeResult
	RegistrationID string `json:"registrationId"`
	EndorsementKey string `json:"endorsementKey"`
	StorageRootKey string `json:"storageRootKey"`
}

// nodeTPMDevice runs interop/node/register-tpm.js: the unmodified SDK with
// azure-iot-security-tpm on the swtpm behind tpmPort.
func nodeTPMDevice(t *testing.T, srv *zdpstest.Server, tpmPort int, env ...string) nodeTPMResult {
	t.Helper()
	return runNode[nodeTPMResult](t, srv, "register-tpm.js", "azure-iot-security-tpm",
		append([]string{"ID_SCOPE=" + srv.IDScope(), "TPM_PORT=" + strconv.Itoa(tpmPort)}, env...)...)
}

// TestNodeSDKTPM: the official Node.js SDK with azure-iot-security-tpm,
// unmodified, on swtpm, registers against zdps serve (direct answers and
// Azure's 202 with polling), re-registers, and is refused when enrolled
// with another EK.
func TestNodeSDKTPM(t *testing.T) {
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"direct 200", nil}, {"Azure 202 and polls", []string{"--azure-202"}}} {
		t.Run(mode.name, func(t *testing.T) {
			srv := zdpstest.Start(t, mode.flags...)
			addHubs(t, srv, "hub-tpm.example.net")
			port := swtpm(t)

			ek := nodeTPMDevice(t, srv, port, "MODE=ek")
			if !ek.OK {
				t.Fatalf("reading the EK through the SDK: %+v", ek)
			}
			raw, err := base64.StdEncoding.DecodeString(ek.EndorsementKey)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tpm.ParseEK(raw); err != nil {
				t.Fatalf("the SDK's EK is refused: %v", err)
			}
			if got := dps.TPMRegistrationID(raw); got != ek.RegistrationID {
				t.Fatalf("registration ID: zdps derives %q, the SDK %q", got, ek.RegistrationID)
			}
			c := srv.Client()
			if _, err := c.PutEnrollment(context.Background(), &enrollment.IndividualEnrollment{
				RegistrationID: ek.RegistrationID,
				DeviceID:       "node-tpm-device", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{EndorsementKey: ek.EndorsementKey}}},
			}, ""); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				res := nodeTPMDevice(t, srv, port)
				if !res.OK || res.DeviceID != "node-tpm-device" || res.AssignedHub != "hub-tpm.example.net" {
					t.Fatalf("registration %d: %+v\nserver log:\n%s", i, res, srv.Logs())
				}
			}
			rec, err := c.GetRegistration(context.Background(), ek.RegistrationID)
			if err != nil || rec.Status != enrollment.RegistrationAssigned {
				t.Fatalf("record %+v, %v", rec, err)
			}

			// Enrolled with another TPM's EK: refused, no record.
			other := nodeTPMDevice(t, srv, swtpm(t), "MODE=ek")
			if _, err := c.PutEnrollment(context.Background(), &enrollment.IndividualEnrollment{
				RegistrationID: "node-tpm-wrong-ek", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{EndorsementKey: other.EndorsementKey}}},
			}, ""); err != nil {
				t.Fatal(err)
			}
			// The refusal is a 401 without authenticationKey, which the SDK
			// reports as a FormatError (as it does with Azure).
			res := nodeTPMDevice(t, srv, port, "REGISTRATION_ID=node-tpm-wrong-ek")
			if res.OK || res.Name != "FormatError" {
				t.Fatalf("want the SDK's refusal of the first round, got %+v", res)
			}
			if _, err := c.GetRegistration(context.Background(), "node-tpm-wrong-ek"); err == nil {
				t.Fatal("a refused device has a registration record")
			}
		})
	}
}
