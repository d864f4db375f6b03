package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// nodeResult is the one JSON line interop/node/register.js prints.
type nodeResult struct {
	OK          bool            `json:"ok"`
	Status      string          `json:"status"`
	AssignedHub string          `json:"assignedHub"`
	DeviceID    string          `json:"deviceId"`
	Raw         json.RawMessage `json:"raw"`
	Error       string          `json:"error"`
	Name        string          `json:"name"`
	StatusCode  *int            `json:"statusCode"`
}

// nodeDevice runs the official Node.js SDK once as a device.
func nodeDevice(t *testing.T, srv *zdpstest.Server, scope, regID string, env ...string) nodeResult {
	t.Helper()
	return runNode[nodeResult](t, srv, "register.js", "azure-iot-provisioning-device",
		append([]string{"ID_SCOPE=" + scope, "REGISTRATION_ID=" + regID}, env...)...)
}

// runNode runs one of the scripts in interop/node against srv, with env
// added to the environment, and decodes the one JSON line it prints (also
// on failure) into a T. pkg is an npm package the script needs.
func runNode[T any](t *testing.T, srv *zdpstest.Server, script, pkg string, env ...string) T {
	t.Helper()
	dir := filepath.Join(zdpstest.RepoRoot(), "interop", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
		t.Fatalf("the Node.js SDK is not installed: run `make test-setup` (npm ci in interop/node): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, script))
	cmd.Env = append(os.Environ(),
		"NODE_EXTRA_CA_CERTS="+srv.CAFile(), "HOST=127.0.0.1", "PORT="+srv.Port, "TIMEOUT_MS=60000")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res T
	if jerr := json.Unmarshal(bytes.TrimSpace(out), &res); jerr != nil {
		t.Fatalf("node printed no result (%v): %s\n%s", jerr, out, stderr.String())
	}
	return res
}

func addHubs(t *testing.T, srv *zdpstest.Server, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := srv.Client().PutHub(context.Background(), &enrollment.Hub{Name: n, AllocationWeight: 1}, ""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNodeSDKSymmetricKey(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	scope := srv.IDScope()
	hubs := []string{"hub-a.example.net", "hub-b.example.net", "hub-c.example.net"}
	addHubs(t, srv, hubs...)

	// An individual enrollment with generated keys.
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "node-sym-1",
		DeviceID:       "node-device-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(ctx, "node-sym-1")
	if err != nil {
		t.Fatal(err)
	}
	// A group; its devices use keys derived from the group key.
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "node-group", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	gkeys, err := c.GroupKeys(ctx, "node-group")
	if err != nil {
		t.Fatal(err)
	}
	groupKey, err := base64.StdEncoding.DecodeString(gkeys.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, regID, key, wantDevice, wantGroup string
	}{
		{"individual primary key", "node-sym-1", keys.SymmetricKey.PrimaryKey, "node-device-1", ""},
		{"individual secondary key", "node-sym-1", keys.SymmetricKey.SecondaryKey, "node-device-1", ""},
		{"key derived from the group key", "node-grp-dev-7", base64.StdEncoding.EncodeToString(sas.DeriveDeviceKey(groupKey, "node-grp-dev-7")), "node-grp-dev-7", "node-group"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := nodeDevice(t, srv, scope, tc.regID, "SYMMETRIC_KEY="+tc.key)
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

	t.Run("wrong key refused", func(t *testing.T) {
		bad := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
		res := nodeDevice(t, srv, scope, "node-sym-1", "SYMMETRIC_KEY="+bad)
		if res.OK || res.StatusCode == nil || *res.StatusCode != 401 {
			t.Fatalf("want a 401 failure, got %+v", res)
		}
	})
	t.Run("group key used directly refused", func(t *testing.T) {
		res := nodeDevice(t, srv, scope, "node-grp-dev-8", "SYMMETRIC_KEY="+gkeys.SymmetricKey.PrimaryKey)
		if res.OK || res.StatusCode == nil || *res.StatusCode != 401 {
			t.Fatalf("want a 401 failure, got %+v", res)
		}
		if _, err := c.GetRegistration(ctx, "node-grp-dev-8"); err == nil {
			t.Fatal("a refused device has a registration record")
		}
	})
}

func TestNodeSDKAzureCompatible202(t *testing.T) {
	srv := zdpstest.Start(t, "--azure-202")
	ctx := context.Background()
	addHubs(t, srv, "hub-only.example.net")
	if _, err := srv.Client().PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "node-202", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := srv.Client().EnrollmentKeys(ctx, "node-202")
	if err != nil {
		t.Fatal(err)
	}
	res := nodeDevice(t, srv, srv.IDScope(), "node-202", "SYMMETRIC_KEY="+keys.SymmetricKey.PrimaryKey, `PAYLOAD={"model":"x1"}`)
	if !res.OK || res.Status != "assigned" || res.AssignedHub != "hub-only.example.net" {
		t.Fatalf("polling registration failed: %+v\n%s", res, srv.Logs())
	}
	// Without a custom allocation webhook Azure answers no payload; the
	// device's own must not come back as if the service had sent it.
	if bytes.Contains(res.Raw, []byte(`"x1"`)) || bytes.Contains(res.Raw, []byte(`"payload"`)) {
		t.Errorf("the device's own payload was echoed: %s", res.Raw)
	}
}
