package interop

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/attestation/dice/dicesim"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// diceDevice builds a simulated DICE device's chain under root and writes
// it as register.js takes it: CERT_FILE holds the Alias (leaf, CN = the
// registration ID) then the DeviceID certificate.
func diceDevice(t *testing.T, root *dicesim.Cert, uds []byte, regID string, fw []byte, svn int64) []string {
	t.Helper()
	l0, l1 := int64(0), int64(1)
	svn0 := int64(1)
	c, err := dicesim.Build(root, dicesim.Device{
		UDS: uds, RegistrationID: regID, Critical: true, UEID: uds[:8],
		DeviceIDTcbInfo: &dice.TcbInfo{Vendor: "acme", Model: "node-board", Layer: &l0, SVN: &svn0, FWIDs: []dice.FWID{dicesim.Measure([]byte("acme DICE engine"))}},
		AliasTcbInfos:   []dice.TcbInfo{{Vendor: "acme", Model: "node-board", Layer: &l1, SVN: &svn, FWIDs: []dice.FWID{dicesim.Measure(fw)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := c.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return []string{"CERT_FILE=" + filepath.Join(dir, "alias-chain.pem"), "KEY_FILE=" + filepath.Join(dir, "alias.key")}
}

// nodeDICE runs register.js like nodeDevice and also returns the SDK's
// result of a failed registration (the RegistrationOperationStatus).
func nodeDICE(t *testing.T, srv *zdpstest.Server, scope, regID string, env ...string) (nodeResult, map[string]any) {
	t.Helper()
	res := nodeDevice(t, srv, scope, regID, env...)
	if res.OK {
		return res, nil
	}
	// Run once more to read the raw failure; the refusal changes nothing,
	// so a second attempt answers the same.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(zdpstest.RepoRoot(), "interop", "node", "register.js"))
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+srv.CAFile(), "HOST=127.0.0.1", "PORT="+srv.Port,
		"ID_SCOPE="+scope, "REGISTRATION_ID="+regID, "TIMEOUT_MS=60000")
	cmd.Env = append(cmd.Env, env...)
	out, _ := cmd.Output()
	var raw struct {
		Result map[string]any `json:"result"`
	}
	_ = json.Unmarshal(bytes.TrimSpace(out), &raw)
	return res, raw.Result
}

// TestNodeSDKDICE registers a simulated DICE device with the official
// Node.js SDK and azure-iot-security-x509 (leaf = Alias certificate, then
// the DeviceID certificate) against an enrollment group that names the
// manufacturer root and carries a firmware policy: allowed firmware
// provisions; a disallowed FWID and a rolled-back SVN are refused with
// status failed and a message naming the layer and the measurement,
// leaving the record alone; a firmware update keeps device ID and hub and
// writes an audit event with the old and new measurements.
func TestNodeSDKDICE(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	scope := srv.IDScope()
	addHubs(t, srv, "hub-d1.example.net", "hub-d2.example.net", "hub-d3.example.net")

	root, err := dicesim.NewRoot("zdps interop DICE manufacturer", nil)
	if err != nil {
		t.Fatal(err)
	}
	fwV3, fwV4, fwEvil := []byte("acme firmware v3"), []byte("acme firmware v4"), []byte("tampered firmware")
	digest := func(fw []byte) firmware.Digest {
		return firmware.Digest{HashAlg: "sha256", Digest: hex.EncodeToString(dicesim.Measure(fw).Digest)}
	}
	minSVN := int64(3)
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "node-dice", Spec: enrollment.Spec{Attestation: x509Mechanism(&enrollment.X509Attestation{SigningCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: string(root.PEM())}}}),
			FirmwarePolicy: &firmware.Policy{
				Vendor: "acme", Model: "node-board", ForbiddenFlags: []string{"debug"},
				Layers: []firmware.LayerPolicy{{Layer: 1, MinSVN: &minSVN, AllowedFWIDs: []firmware.Digest{digest(fwV3), digest(fwV4)}}},
			}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetGroup(ctx, "node-dice")
	if err != nil || got.FirmwarePolicy == nil || len(got.FirmwarePolicy.Layers) != 1 {
		t.Fatalf("the service API lost the firmware policy: %+v %v", got, err)
	}

	uds := bytes.Repeat([]byte{0x5a}, 32)
	const regID = "node-dice-dev-1"

	// Allowed firmware provisions.
	res, _ := nodeDICE(t, srv, scope, regID, diceDevice(t, root, uds, regID, fwV3, 3)...)
	if !res.OK || res.Status != "assigned" || res.DeviceID != regID {
		t.Fatalf("registration did not end assigned: %+v\nserver log:\n%s", res, srv.Logs())
	}
	first, err := c.GetRegistration(ctx, regID)
	if err != nil {
		t.Fatal(err)
	}
	if first.DICE == nil || !strings.HasPrefix(first.DICE.DeviceIDKey, "sha256:") || len(first.DICE.Measurements) != 2 {
		t.Fatalf("the record keeps no DICE state: %+v", first)
	}

	// The same device with a disallowed FWID, then with a rolled-back SVN.
	refusals := []struct {
		name, want string
		files      []string
	}{
		{"disallowed FWID", "layer 1: FWID sha256:" + digest(fwEvil).Digest + " is not allowed", diceDevice(t, root, uds, regID, fwEvil, 3)},
		{"rolled-back SVN", "layer 1: svn 2 is below the minimum 3", diceDevice(t, root, uds, regID, fwV3, 2)},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			res, failure := nodeDICE(t, srv, scope, regID, tc.files...)
			if res.OK || res.Name != "ProvisioningRegistrationFailedError" {
				t.Fatalf("want the SDK's registration failed error, got %+v", res)
			}
			state, _ := failure["registrationState"].(map[string]any)
			msg, _ := state["errorMessage"].(string)
			if code, _ := state["errorCode"].(float64); code != 403010 || !strings.Contains(msg, tc.want) {
				t.Errorf("the device was told %v %q, want 403010 and %q", state["errorCode"], msg, tc.want)
			}
			rec, err := c.GetRegistration(ctx, regID)
			if err != nil || rec.ETag != first.ETag || !rec.DICE.Equal(first.DICE) {
				t.Errorf("a refused registration changed the record: %+v %v", rec, err)
			}
		})
	}

	// A firmware update: new Alias, same DeviceID; same device ID and hub.
	res, _ = nodeDICE(t, srv, scope, regID, diceDevice(t, root, uds, regID, fwV4, 4)...)
	if !res.OK || res.DeviceID != regID || res.AssignedHub != first.AssignedHub {
		t.Fatalf("after the update: %+v, first hub %s\nserver log:\n%s", res, first.AssignedHub, srv.Logs())
	}
	after, err := c.GetRegistration(ctx, regID)
	if err != nil {
		t.Fatal(err)
	}
	if after.DICE.DeviceIDKey != first.DICE.DeviceIDKey || after.DICE.Equal(first.DICE) {
		t.Fatalf("DeviceID key must stay and measurements change: %+v → %+v", first.DICE, after.DICE)
	}
	var audit map[string]any
	srv.LogContains(`"action":"firmware-change"`) // the log reaches the test through a pipe, maybe after the answer
	for _, line := range strings.Split(srv.Logs(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "audit" && m["action"] == "firmware-change" {
			audit = m
		}
	}
	if audit == nil || audit["old_measurements"] != first.DICE.Summary() || audit["new_measurements"] != after.DICE.Summary() {
		t.Fatalf("audit event %v\nserver log:\n%s", audit, srv.Logs())
	}

	// Another device (another DeviceID key) claiming the registration ID
	// is refused (401), and the record stays.
	res, _ = nodeDICE(t, srv, scope, regID, diceDevice(t, root, bytes.Repeat([]byte{0x11}, 32), regID, fwV4, 4)...)
	if res.OK || res.StatusCode == nil || *res.StatusCode != 401 {
		t.Fatalf("want a 401 for another DeviceID, got %+v", res)
	}

	// The DeviceID certificate as an individual enrollment.
	devID := mustDeviceIDCert(t, root, uds)
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "node-dice-ind", Spec: enrollment.Spec{Attestation: x509Mechanism(&enrollment.X509Attestation{ClientCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: devID}}})},
	}, ""); err != nil {
		t.Fatal(err)
	}
	res, _ = nodeDICE(t, srv, scope, "node-dice-ind", diceDevice(t, root, uds, "node-dice-ind", fwV4, 4)...)
	if !res.OK || res.Status != "assigned" {
		t.Fatalf("individual enrollment naming the DeviceID certificate: %+v\nserver log:\n%s", res, srv.Logs())
	}
}

// mustDeviceIDCert is the DeviceID certificate of the device with secret
// uds, as diceDevice builds it (PEM).
func mustDeviceIDCert(t *testing.T, root *dicesim.Cert, uds []byte) string {
	t.Helper()
	files := diceDevice(t, root, uds, "any-id", []byte("any"), 1)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(strings.TrimPrefix(files[0], "CERT_FILE=")), "deviceid.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
