package devicecmd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil/cmdtest"
	"github.com/zdps/zdps/internal/testpki"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// runZdps runs `zdps device ...` in-process with an empty environment
// and returns its exit status, stdout and stderr.
var runZdps = cmdtest.Runner(NewDeviceCmd)

// readChain parses a PEM chain file.
func readChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	return chain
}

// checkIssued verifies the written chain and key: the leaf names the
// device, verifies against the server's CA bundle for client auth, and
// certifies the written key, which is PKCS#8 in a 0600 file.
func checkIssued(t *testing.T, srv *zdpstest.Server, certPath, keyPath, deviceID string) {
	t.Helper()
	chain := readChain(t, certPath)
	if len(chain) < 2 {
		t.Fatalf("%s holds %d certificates", certPath, len(chain))
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: srv.RootCAs(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued leaf does not verify: %v", err)
	}
	if chain[0].Subject.CommonName != deviceID {
		t.Errorf("leaf CN %q, want %q", chain[0].Subject.CommonName, deviceID)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(keyPath)
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		t.Fatalf("key file is not PKCS#8 PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.(crypto.Signer).Public()) {
		t.Error("the key file does not hold the leaf's key")
	}
}

func TestDeviceRegisterCommand(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	scope := srv.IDScope()
	if _, err := c.PutHub(ctx, &enrollment.Hub{Name: "hub-a.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "cli-sym-1", DeviceID: "cli-device-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(ctx, "cli-sym-1")
	if err != nil {
		t.Fatal(err)
	}
	key := keys.SymmetricKey.PrimaryKey
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "cli-group", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	gkeys, err := c.GroupKeys(ctx, "cli-group")
	if err != nil {
		t.Fatal(err)
	}
	groupKey := gkeys.SymmetricKey.PrimaryKey
	explicit := []string{"device", "register", "--endpoint", srv.Addr(), "--id-scope", scope, "--ca-file", srv.CAFile(), "--data-dir", t.TempDir()}

	t.Run("individual key, table output, files written", func(t *testing.T) {
		dir := t.TempDir()
		certPath, keyPath := filepath.Join(dir, "dev.pem"), filepath.Join(dir, "dev.key")
		code, out, errOut := runZdps(t, append(explicit, "--registration-id", "cli-sym-1", "--key", key,
			"--payload", `{"model":"m1"}`, "--out-cert", certPath, "--out-key", keyPath)...)
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errOut, srv.Logs())
		}
		for _, want := range []string{"Status:", "assigned", "Assigned hub:", "hub-a.example.net", "Device ID:", "cli-device-1", "Certificate:", certPath, "Private key:", keyPath} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, key) || strings.Contains(errOut, key) {
			t.Error("the key was printed")
		}
		checkIssued(t, srv, certPath, keyPath, "cli-device-1")
	})

	t.Run("group key, JSON output, service from the data directory, default file names", func(t *testing.T) {
		t.Chdir(t.TempDir())
		code, out, errOut := runZdps(t, "device", "register", "--data-dir", srv.DataDir,
			"--registration-id", "cli-grp-dev-1", "--group-key", groupKey, "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got deviceRegisterOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if got.Status != "assigned" || got.DeviceID != "cli-grp-dev-1" || got.EnrollmentGroupID != "cli-group" ||
			got.CertificateFile != "cli-grp-dev-1.pem" || got.KeyFile != "cli-grp-dev-1.key" || got.Certificate == nil {
			t.Fatalf("output %+v", got)
		}
		checkIssued(t, srv, "cli-grp-dev-1.pem", "cli-grp-dev-1.key", "cli-grp-dev-1")
	})

	t.Run("no CSR writes nothing", func(t *testing.T) {
		t.Chdir(t.TempDir())
		code, out, errOut := runZdps(t, append(explicit, "--registration-id", "cli-sym-1", "--key", key, "--no-csr", "-o", "json")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if strings.Contains(out, "certificateFile") {
			t.Errorf("output %s", out)
		}
		if entries, _ := os.ReadDir("."); len(entries) != 0 {
			t.Errorf("files written: %v", entries)
		}
	})

	t.Run("X.509 leaf plus intermediate from files", func(t *testing.T) {
		root := testpki.Issue(t, "CLI Root", true, nil)
		inter := testpki.Issue(t, "CLI Intermediate", true, root)
		leaf := testpki.Issue(t, "cli-x509-dev-1", false, inter)
		if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
			EnrollmentGroupID: "cli-x509", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
				SigningCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: string([]byte(root.PEM()))}}}}},
		}, ""); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		chainFile, keyFile := filepath.Join(dir, "device-chain.pem"), filepath.Join(dir, "device.key")
		der, err := x509.MarshalECPrivateKey(leaf.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(chainFile, append([]byte(leaf.PEM()), []byte(inter.PEM())...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		certPath, keyPath := filepath.Join(dir, "op.pem"), filepath.Join(dir, "op.key")
		code, out, errOut := runZdps(t, append(explicit, "--cert", chainFile, "--key-file", keyFile, "--out-cert", certPath, "--out-key", keyPath, "-o", "json")...)
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errOut, srv.Logs())
		}
		var got deviceRegisterOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if got.RegistrationID != "cli-x509-dev-1" || got.DeviceID != "cli-x509-dev-1" || got.EnrollmentGroupID != "cli-x509" {
			t.Fatalf("output %+v", got)
		}
		checkIssued(t, srv, certPath, keyPath, "cli-x509-dev-1")

		stranger := testpki.Issue(t, "cli-x509-dev-2", false, nil)
		der, _ = x509.MarshalECPrivateKey(stranger.Key)
		_ = os.WriteFile(chainFile, []byte(stranger.PEM()), 0o644)
		_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
		code, _, errOut = runZdps(t, append(explicit, "--cert", chainFile, "--key-file", keyFile, "--no-csr")...)
		if code == 0 || !strings.Contains(errOut, "did not accept the certificate") {
			t.Fatalf("unenrolled certificate: exit %d, %s", code, errOut)
		}
	})

	wrongKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	failures := []struct {
		name string
		args []string
		want string
	}{
		{"wrong key", append(explicit, "--registration-id", "cli-sym-1", "--key", wrongKey), `register device "cli-sym-1" at ` + srv.Addr() + `: unauthorized`},
		{"unknown ID scope", []string{"device", "register", "--endpoint", srv.Addr(), "--id-scope", "0ne00000000", "--ca-file", srv.CAFile(), "--registration-id", "cli-sym-1", "--key", key}, "no provisioning service with ID scope"},
		{"untrusted server", []string{"device", "register", "--endpoint", srv.Addr(), "--id-scope", scope, "--data-dir", t.TempDir(), "--registration-id", "cli-sym-1", "--key", key}, "--ca-file"},
		{"no credential", append(explicit, "--registration-id", "cli-sym-1"), "exactly one of --key, --group-key, or --cert"},
		{"two credentials", append(explicit, "--registration-id", "cli-sym-1", "--key", key, "--group-key", groupKey), "exactly one of"},
		{"cert without key file", append(explicit, "--cert", "x.pem"), "--cert and --key-file go together"},
		{"key not base64", append(explicit, "--registration-id", "cli-sym-1", "--key", "not*base64"), "--key must be a base64 key"},
		{"no registration ID", append(explicit, "--key", key), "--registration-id is required"},
		{"bad payload", append(explicit, "--registration-id", "cli-sym-1", "--key", key, "--payload", "{"), "--payload is not valid JSON"},
		{"no service", []string{"device", "register", "--data-dir", t.TempDir(), "--registration-id", "cli-sym-1", "--key", key}, "--endpoint and --id-scope are required"},
		{"same output file", append(explicit, "--registration-id", "cli-sym-1", "--key", key, "--out-cert", "x", "--out-key", "./x"), "name the same file"},
		{"missing cert file", append(explicit, "--cert", "nope.pem", "--key-file", "nope.key"), "device certificate nope.pem"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runZdps(t, tc.args...)
			t.Log(strings.TrimSpace(errOut))
			if code == 0 {
				t.Fatalf("succeeded: %s", out)
			}
			if !strings.HasPrefix(errOut, "zdps: ") || strings.Count(errOut, "\n") != 1 {
				t.Errorf("not one line: %q", errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q lacks %q", errOut, tc.want)
			}
			if strings.Contains(errOut, key) || strings.Contains(errOut, wrongKey) {
				t.Error("a key was printed")
			}
		})
	}
}

func TestDeviceRegisterCommandMQTT(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.PutHub(ctx, &enrollment.Hub{Name: "hub-m.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "cli-mqtt-1", DeviceID: "cli-mqtt-device", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(ctx, "cli-mqtt-1")
	if err != nil {
		t.Fatal(err)
	}
	key := keys.SymmetricKey.PrimaryKey
	wrongKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	for _, tc := range []struct{ transport, endpoint string }{{"mqtt", srv.MQTTAddr()}, {"mqtt-ws", srv.Addr()}} {
		args := []string{"device", "register", "--transport", tc.transport, "--endpoint", tc.endpoint, "--id-scope", srv.IDScope(), "--ca-file", srv.CAFile(), "--registration-id", "cli-mqtt-1"}
		t.Run(tc.transport, func(t *testing.T) {
			dir := t.TempDir()
			certPath, keyPath := filepath.Join(dir, "dev.pem"), filepath.Join(dir, "dev.key")
			code, out, errOut := runZdps(t, append(args, "--key", key, "--out-cert", certPath, "--out-key", keyPath, "-o", "json")...)
			if code != 0 {
				t.Fatalf("exit %d: %s\n%s", code, errOut, srv.Logs())
			}
			var got deviceRegisterOutput
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if got.Status != "assigned" || got.DeviceID != "cli-mqtt-device" || got.AssignedHub != "hub-m.example.net" {
				t.Fatalf("output %+v", got)
			}
			checkIssued(t, srv, certPath, keyPath, "cli-mqtt-device")
		})
		t.Run(tc.transport+" wrong key", func(t *testing.T) {
			code, _, errOut := runZdps(t, append(args, "--key", wrongKey, "--no-csr")...)
			if want := `register device "cli-mqtt-1" at ` + tc.endpoint + `: unauthorized`; code == 0 || !strings.Contains(errOut, want) {
				t.Fatalf("exit %d, stderr %q lacks %q", code, errOut, want)
			}
		})
	}
	failures := []struct {
		name string
		args []string
		want string
	}{
		{"unknown transport", []string{"--transport", "amqp", "--key", key}, `--transport "amqp": want https, mqtt or mqtt-ws`},
		{"TPM over MQTT", []string{"--transport", "mqtt", "--tpm", "unix:/nonexistent"}, "--tpm registers over HTTPS only"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"device", "register", "--endpoint", srv.Addr(), "--id-scope", srv.IDScope(), "--ca-file", srv.CAFile(), "--registration-id", "cli-mqtt-1"}, tc.args...)
			code, _, errOut := runZdps(t, args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q lacks %q", code, errOut, tc.want)
			}
		})
	}
}

func TestMQTTEndpoint(t *testing.T) {
	cases := map[string]string{
		"dps.example.net:443":     "dps.example.net:8883",
		"dps.example.net":         "dps.example.net:8883",
		"https://127.0.0.1:8443/": "127.0.0.1:8883",
		"[::1]:443":               "[::1]:8883",
	}
	for in, want := range cases {
		if got := mqttEndpoint(in); got != want {
			t.Errorf("mqttEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}
