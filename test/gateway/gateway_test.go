package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"

	"github.com/zdps/zdps/internal/cakms/cakmstest"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

const (
	site = "plant"
	hub  = "hub.plant.example.net"
	// interval is the gateway's --sync-interval here (30s by default).
	interval = 10 * time.Second
)

// central is the central zdps with a site, a gateway enrollment and what
// the site's devices enroll with.
type central struct {
	*zdpstest.Server
	c *client.Client
}

func (c *central) symmetric(t *testing.T, id string, edge bool) []byte {
	t.Helper()
	ctx := context.Background()
	en := &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}},
		Site:        site}}
	if edge {
		en.Capabilities = &enrollment.DeviceCapabilities{IoTEdge: true}
	}
	if _, err := c.c.PutEnrollment(ctx, en, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.c.EnrollmentKeys(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	return k
}

func (c *central) group(t *testing.T, id string) {
	t.Helper()
	g := &enrollment.EnrollmentGroup{EnrollmentGroupID: id, Spec: enrollment.Spec{
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}},
		Site:        site}}
	if _, err := c.c.PutGroup(context.Background(), g, ""); err != nil {
		t.Fatal(err)
	}
}

func startCentral(t *testing.T) *central {
	s := zdpstest.Start(t, "--site-ca-validity", "24h")
	c := &central{Server: s, c: s.Client()}
	ctx := context.Background()
	if _, err := c.c.PutHub(ctx, &enrollment.Hub{Name: hub, AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.c.CreateSite(ctx, &enrollment.Site{Name: site, Hubs: []string{hub}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func startGateway(t *testing.T, c *central, key []byte) *zdpstest.Server {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "gw-key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return zdpstest.Start(t, "--upstream", "https://"+c.Addr(), "--upstream-ca-file", c.CAFile(),
		"--upstream-id-scope", c.IDScope(), "--upstream-registration-id", "gw-1", "--upstream-key-file", keyFile,
		"--sync-interval", interval.String())
}

// eventually polls f every 100 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (%s)", what, d, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countRecords(t *testing.T, c *client.Client, group string) int {
	t.Helper()
	n := 0
	for _, err := range c.Registrations(context.Background(), group, 1000) {
		if err != nil {
			return -1
		}
		n++
	}
	return n
}

// bench runs `zdps bench` against the gateway for the devices of group.
func bench(t *testing.T, gw *zdpstest.Server, group string, n int) {
	t.Helper()
	cmd := exec.Command(zdpstest.Binary(t), "bench", "--connection-string", gw.ConnectionString(), "--ca-file", gw.CAFile(),
		"--endpoint", gw.Addr(), "--attestation", "symmetric-group", "--prefix", group, "--devices", fmt.Sprint(n),
		"--concurrency", "32", "-o", "json", "--progress=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zdps bench: %v\n%s", err, out)
	}
	var rep struct {
		Succeeded int `json:"succeeded"`
		Failed    int `json:"failed"`
	}
	if i := bytes.IndexByte(out, '{'); i >= 0 {
		_ = json.Unmarshal(out[i:], &rep)
	}
	t.Logf("bench %s: %s", group, firstLine(out))
}

func firstLine(b []byte) string {
	s := string(b)
	if len(s) > 400 {
		s = s[:400]
	}
	return strings.ReplaceAll(s, "\n", " ")
}

type nodeResult struct {
	OK     bool   `json:"ok"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

// node registers regID at gw with the official Node.js SDK.
func node(t *testing.T, gw *zdpstest.Server, scope, regID string, key []byte) nodeResult {
	t.Helper()
	dir := filepath.Join(zdpstest.RepoRoot(), "interop", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "azure-iot-provisioning-device")); err != nil {
		t.Fatalf("the Node.js SDK is not installed: run `make test-setup`: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "register.js"))
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+gw.CAFile(), "HOST=127.0.0.1", "PORT="+gw.Port, "TIMEOUT_MS=60000",
		"ID_SCOPE="+scope, "REGISTRATION_ID="+regID, "SYMMETRIC_KEY="+base64.StdEncoding.EncodeToString(key))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res nodeResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("node printed no result (%v): %s\n%s", err, out, stderr.String())
	}
	return res
}

// TestGatewayOffline is issue 18's end-to-end test.
func TestGatewayOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	c := startCentral(t)
	gwKey := c.symmetric(t, "gw-1", true)
	nodeKey := c.symmetric(t, "node-1", false)
	devKey := c.symmetric(t, "dev-x", false)
	c.group(t, "fleet")
	c.group(t, "fleet2")

	gw := startGateway(t, c, gwKey)
	gc := gw.Client()
	scope := c.IDScope()
	if gw.IDScope() != scope {
		t.Fatalf("the gateway's ID scope %s is not central's %s", gw.IDScope(), scope)
	}
	// The first sync brings the site's enrollments, groups and hubs.
	eventually(t, 10*time.Second, "feed at the gateway", func() (bool, string) {
		_, err1 := gc.GetGroup(ctx, "fleet2")
		_, err2 := gc.GetEnrollment(ctx, "node-1")
		return err1 == nil && err2 == nil, fmt.Sprint(err1, err2)
	})
	// Central state wins: the gateway's service API refuses writes.
	_, err := gc.PutEnrollment(ctx, &enrollment.IndividualEnrollment{RegistrationID: "local-1", Spec: enrollment.Spec{
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}}}, "")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "central zdps") {
		t.Fatalf("enrollment write at the gateway: %v, want a 400 naming central", err)
	}

	// The link goes down: 1,000 devices and the Node.js SDK provision at
	// the gateway.
	c.Stop()
	start := time.Now()
	bench(t, gw, "fleet", 1000)
	if r := node(t, gw, scope, "node-1", nodeKey); !r.OK || r.Status != "assigned" {
		t.Fatalf("Node.js SDK at the gateway: %+v", r)
	}
	// One more with an operational certificate, disabled later.
	dx, err := device.Register(ctx, device.Config{Endpoint: gw.Addr(), IDScope: scope, RegistrationID: "dev-x", SymmetricKey: devKey,
		GenerateKey: true, RootCAs: c.RootCAs(), MaxWait: 30 * time.Second})
	if err != nil {
		t.Fatalf("dev-x at the gateway: %v", err)
	}
	if out, ok := opensslVerify(t, centralRoot(t, c.Server), dx.IssuedCertificateChain); !ok {
		t.Fatalf("dev-x's chain from the gateway does not verify against central's root: %s", out)
	}
	t.Logf("1,001 registrations at the gateway offline in %v", time.Since(start).Round(time.Millisecond))
	// The gateway's TLS certificate, capped by its delegated CA's short
	// life, is issued once, not at every handshake.
	if n := strings.Count(gw.Logs(), "server certificate issued"); n != 1 {
		t.Fatalf("the gateway issued its TLS certificate %d times", n)
	}
	if n := countRecords(t, gc, "fleet"); n != 1000 {
		t.Fatalf("the gateway holds %d records of fleet", n)
	}

	// The link is back: within one sync interval central holds every
	// record (offline, the gateway probes central every second).
	c.Restart()
	back := time.Now()
	eventually(t, interval, "records at central", func() (bool, string) {
		n := countRecords(t, c.c, "fleet")
		_, err1 := c.c.GetRegistration(ctx, "node-1")
		_, err2 := c.c.GetRegistration(ctx, "dev-x")
		return n == 1000 && err1 == nil && err2 == nil, fmt.Sprintf("%d of fleet, node-1: %v, dev-x: %v", n, err1, err2)
	})
	t.Logf("central holds all 1,001 records %v after it came back", time.Since(back).Round(time.Millisecond))
	rec, err := c.c.GetRegistration(ctx, "fleet-0000000")
	if err != nil || rec.Site != site || rec.Gateway != "gw-1" {
		t.Fatalf("central's record: %+v %v", rec, err)
	}

	// A device disabled centrally is refused at the gateway after the
	// next sync, and its certificate is on the gateway's CRL.
	en, err := c.c.GetEnrollment(ctx, "dev-x")
	if err != nil {
		t.Fatal(err)
	}
	en.ProvisioningStatus, en.RegistrationState = enrollment.StatusDisabled, nil
	if _, err := c.c.PutEnrollment(ctx, en, en.ETag); err != nil {
		t.Fatal(err)
	}
	eventually(t, interval+5*time.Second, "disable at the gateway", func() (bool, string) {
		e, err := gc.GetEnrollment(ctx, "dev-x")
		return err == nil && e.ProvisioningStatus == enrollment.StatusDisabled, fmt.Sprint(err)
	})
	_, err = device.Register(ctx, device.Config{Endpoint: gw.Addr(), IDScope: scope, RegistrationID: "dev-x", SymmetricKey: devKey,
		GenerateKey: true, RootCAs: c.RootCAs(), MaxWait: 30 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("a disabled device at the gateway: %v", err)
	}
	crlDER, err := gc.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(gatewayCA(t, gw)); err != nil {
		t.Fatalf("the gateway's CRL is not signed by its delegated CA: %v", err)
	}
	if !onCRL(crl, fmt.Sprintf("%032x", dx.IssuedCertificateChain[0].SerialNumber)) {
		t.Fatal("dev-x's certificate is not on the gateway's CRL")
	}

	// kill -9 of the gateway mid-sync: 300 more devices offline, then
	// the gateway dies while it pushes them; after its restart central
	// holds each exactly once.
	c.Stop()
	bench(t, gw, "fleet2", 300)
	c.Restart()
	eventually(t, interval+20*time.Second, "push under way", func() (bool, string) {
		n := countRecords(t, c.c, "fleet2")
		return n > 0, fmt.Sprint(n)
	})
	mid := countRecords(t, c.c, "fleet2")
	gw.Kill()
	t.Logf("gateway killed with %d of 300 records at central", mid)
	etags := map[string]string{}
	gw.Restart()
	eventually(t, interval+20*time.Second, "records after the crash", func() (bool, string) {
		n := countRecords(t, c.c, "fleet2")
		return n == 300, fmt.Sprint(n)
	})
	for r, err := range c.c.Registrations(ctx, "fleet2", 1000) {
		if err != nil {
			t.Fatal(err)
		}
		etags[r.RegistrationID] = r.ETag
	}
	// One more sync changes nothing at central: nothing is pushed again
	// as new.
	time.Sleep(interval + time.Second)
	for r, err := range c.c.Registrations(ctx, "fleet2", 1000) {
		if err != nil {
			t.Fatal(err)
		}
		if etags[r.RegistrationID] != r.ETag {
			t.Fatalf("%s was stored again at central after the crash", r.RegistrationID)
		}
	}

	// Every certificate central holds for the site verifies against
	// central's root with openssl, through the delegated CA and central's
	// intermediate.
	c.Stop()
	gw.Stop()
	verifyCentralCertificates(t, c.Server, gw, 1301)
}

// opensslVerify has openssl verify chain[0] with roots' only root
// trusted and the rest of chain untrusted.
func opensslVerify(t *testing.T, root *x509.Certificate, chain []*x509.Certificate) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "leaf.pem"), chain[0].Raw)
	writePEM(t, filepath.Join(dir, "root.pem"), root.Raw)
	var mid [][]byte
	for _, c := range chain[1 : len(chain)-1] {
		mid = append(mid, c.Raw)
	}
	writePEM(t, filepath.Join(dir, "mid.pem"), mid...)
	out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "root.pem"), "-untrusted", filepath.Join(dir, "mid.pem"), filepath.Join(dir, "leaf.pem")).CombinedOutput()
	return string(out), err == nil
}

func gatewayCA(t *testing.T, gw *zdpstest.Server) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(gw.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func onCRL(crl *x509.RevocationList, serial string) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if fmt.Sprintf("%032x", e.SerialNumber) == serial {
			return true
		}
	}
	return false
}

// verifyCentralCertificates reads the certificates in central's stopped
// store and has openssl verify each of the site's against central's root
// alone, with the gateway's delegated CA and central's intermediate as
// untrusted intermediates. want counts them (the Node.js SDK sends no
// CSR, so its device has none).
func verifyCentralCertificates(t *testing.T, c *zdpstest.Server, gw *zdpstest.Server, want int) {
	t.Helper()
	b, err := bolt.Open(filepath.Join(c.DataDir, "zdps.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	certs, err := revocation.Certificates(b, nil).All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bundle := parsePEM(t, gw.CAFile()) // delegated, central intermediate, central root
	root := centralRoot(t, c)
	writePEM(t, filepath.Join(dir, "root.pem"), root.Raw)
	var chain [][]byte
	for _, c := range bundle[:len(bundle)-1] {
		chain = append(chain, c.Raw)
	}
	writePEM(t, filepath.Join(dir, "untrusted.pem"), chain...)
	var files []string
	for _, ct := range certs {
		leaf, err := x509.ParseCertificate(ct.Chain[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(leaf.Subject.Organization) == 0 || leaf.Subject.Organization[0] != "zdps-site-"+site {
			continue // central's own (the gateway's client certificate)
		}
		f := filepath.Join(dir, ct.Serial+".pem")
		writePEM(t, f, ct.Chain[0])
		files = append(files, f)
	}
	if len(files) != want {
		t.Fatalf("central holds %d certificates issued at the site, want %d", len(files), want)
	}
	for i := 0; i < len(files); i += 200 {
		args := append([]string{"verify", "-CAfile", filepath.Join(dir, "root.pem"), "-untrusted", filepath.Join(dir, "untrusted.pem")}, files[i:min(i+200, len(files))]...)
		out, err := exec.Command("openssl", args...).CombinedOutput()
		if err != nil || strings.Count(string(out), ": OK") != min(200, len(files)-i) {
			t.Fatalf("openssl verify: %v\n%s", err, firstLine(out))
		}
	}
	t.Logf("openssl verified %d certificates at central against its root", len(files))
}

// centralRoot is the last certificate of central's bundle: its root.
func centralRoot(t *testing.T, c *zdpstest.Server) *x509.Certificate {
	b := parsePEM(t, c.CAFile())
	return b[len(b)-1]
}

func parsePEM(t *testing.T, file string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func writePEM(t *testing.T, file string, ders ...[]byte) {
	t.Helper()
	var b []byte
	for _, d := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayCAKeyInTPM: with --ca-kms the gateway's delegated CA key is
// made in its TPM (swtpm here) and devices get certificates signed there.
func TestGatewayCAKeyInTPM(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	c := startCentral(t)
	gwKey := c.symmetric(t, "gw-1", true)
	devKey := c.symmetric(t, "dev-t", false)
	uri, _ := cakmstest.SWTPM(t)
	keyFile := filepath.Join(t.TempDir(), "gw-key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(gwKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := zdpstest.Start(t, "--upstream", "https://"+c.Addr(), "--upstream-ca-file", c.CAFile(),
		"--upstream-id-scope", c.IDScope(), "--upstream-registration-id", "gw-1", "--upstream-key-file", keyFile,
		"--sync-interval", interval.String(), "--ca-kms", uri)
	if !gw.LogContains(`"kms":"tpmkms"`) {
		t.Fatalf("the gateway's CA key is not in the TPM:\n%s", gw.Logs())
	}
	eventually(t, 10*time.Second, "feed at the gateway", func() (bool, string) {
		_, err := gw.Client().GetEnrollment(ctx, "dev-t")
		return err == nil, fmt.Sprint(err)
	})
	res, err := device.Register(ctx, device.Config{Endpoint: gw.Addr(), IDScope: c.IDScope(), RegistrationID: "dev-t", SymmetricKey: devKey,
		GenerateKey: true, RootCAs: c.RootCAs(), MaxWait: 30 * time.Second})
	if err != nil {
		t.Fatalf("register at the gateway: %v\n%s", err, gw.Logs())
	}
	if out, ok := opensslVerify(t, centralRoot(t, c.Server), res.IssuedCertificateChain); !ok {
		t.Fatalf("openssl verify: %s", out)
	}
}

// TestGatewayX509Credential: a gateway enrolled at central with an X.509
// certificate (--upstream-cert, --upstream-key) provisions itself and
// gets its delegated CA.
func TestGatewayX509Credential(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	c := startCentral(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw-x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "gw.pem"), filepath.Join(dir, "gw-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	en := &enrollment.IndividualEnrollment{RegistrationID: "gw-x", Spec: enrollment.Spec{Site: site,
		Capabilities: &enrollment.DeviceCapabilities{IoTEdge: true},
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			ClientCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: string(certPEM)}}}}}}
	if _, err := c.c.PutEnrollment(ctx, en, ""); err != nil {
		t.Fatal(err)
	}
	gw := zdpstest.Start(t, "--upstream", "https://"+c.Addr(), "--upstream-ca-file", c.CAFile(),
		"--upstream-id-scope", c.IDScope(), "--upstream-registration-id", "gw-x",
		"--upstream-cert", certFile, "--upstream-key", keyFile, "--sync-interval", interval.String())
	if !gw.LogContains("gateway delegated CA stored") {
		t.Fatalf("no delegated CA:\n%s", gw.Logs())
	}
	rec, err := c.c.GetRegistration(ctx, "gw-x")
	if err != nil || rec.Status != enrollment.RegistrationAssigned {
		t.Fatalf("the gateway's record at central: %+v %v", rec, err)
	}
}

// TestGatewayTPMCredential: a gateway enrolled at central by its TPM's
// endorsement key (--upstream-tpm; swtpm here) provisions itself with the
// Azure TPM flow and gets its delegated CA.
func TestGatewayTPMCredential(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	c := startCentral(t)
	_, stateDir := cakmstest.SWTPM(t)
	sock := filepath.Join(stateDir, "tpm.sock")
	tr, err := linuxudstpm.Open(sock)
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.NewTPM(tr)
	if err != nil {
		t.Fatal(err)
	}
	ek := base64.StdEncoding.EncodeToString(d.EndorsementKey())
	_ = d.Close()
	en := &enrollment.IndividualEnrollment{RegistrationID: "gw-tpm", Spec: enrollment.Spec{Site: site,
		Capabilities: &enrollment.DeviceCapabilities{IoTEdge: true},
		Attestation:  &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{EndorsementKey: ek}}}}
	if _, err := c.c.PutEnrollment(ctx, en, ""); err != nil {
		t.Fatal(err)
	}
	gw := zdpstest.Start(t, "--upstream", "https://"+c.Addr(), "--upstream-ca-file", c.CAFile(),
		"--upstream-id-scope", c.IDScope(), "--upstream-registration-id", "gw-tpm",
		"--upstream-tpm", "unix:"+sock, "--sync-interval", interval.String())
	if !gw.LogContains("gateway delegated CA stored") {
		t.Fatalf("no delegated CA:\n%s", gw.Logs())
	}
	if rec, err := c.c.GetRegistration(ctx, "gw-tpm"); err != nil || rec.Status != enrollment.RegistrationAssigned {
		t.Fatalf("the gateway's record at central: %+v %v", rec, err)
	}
}
