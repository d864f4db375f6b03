package cacmd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil/cmdtest"
	"github.com/zdps/zdps/internal/testpki"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// runZdps runs `zdps ca ...` in-process.
var runZdps = cmdtest.Runner(NewCACmd)

// caFixture is one zdps serve with a hub, for the ca command tests.
type caFixture struct {
	srv   *zdpstest.Server
	c     *client.Client
	scope string
	// data is the flag that points the CLI at the server's data directory
	// (connection string and CA bundle).
	data []string
}

func newCAFixture(t *testing.T, extra ...string) *caFixture {
	t.Helper()
	srv := zdpstest.Start(t, extra...)
	f := &caFixture{srv: srv, c: srv.Client(), scope: srv.IDScope(), data: []string{"--data-dir", srv.DataDir}}
	if _, err := f.c.PutHub(context.Background(), &enrollment.Hub{Name: "hub-ca.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	return f
}

// zdps runs the CLI against the fixture's server and fails the test on a
// non-zero exit.
func (f *caFixture) zdps(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runZdps(t, append(args, f.data...)...)
	if code != 0 {
		t.Fatalf("zdps %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// enroll creates an individual symmetric-key enrollment and returns its key.
func (f *caFixture) enroll(t *testing.T, id string) []byte {
	t.Helper()
	ctx := context.Background()
	if _, err := f.c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := f.c.EnrollmentKeys(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	return k
}

// group creates a symmetric-key group and returns its key.
func (f *caFixture) group(t *testing.T, id string) []byte {
	t.Helper()
	ctx := context.Background()
	if _, err := f.c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := f.c.GroupKeys(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	return k
}

// register registers a device through the Go device SDK with a CSR and
// returns the issued leaf.
func (f *caFixture) register(t *testing.T, cfg device.Config) *x509.Certificate {
	t.Helper()
	cfg.Endpoint, cfg.IDScope, cfg.RootCAs = f.srv.Addr(), f.scope, f.srv.RootCAs()
	if cfg.CSR == nil {
		cfg.GenerateKey = true
	}
	res, err := device.Register(context.Background(), cfg)
	if err != nil {
		t.Fatalf("register %s: %v\n%s", cfg.RegistrationID, err, f.srv.Logs())
	}
	if len(res.IssuedCertificateChain) == 0 {
		t.Fatalf("register %s: no certificate issued", cfg.RegistrationID)
	}
	return res.IssuedCertificateChain[0]
}

// fetchCRL GETs /crl over TLS without credentials, as a relying party
// does, and checks the signature against the intermediate.
func (f *caFixture) fetchCRL(t *testing.T, inter *x509.Certificate) (*x509.RevocationList, []byte) {
	t.Helper()
	resp, err := f.srv.HTTPClient().Get("https://" + f.srv.Addr() + "/crl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /crl: %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), der)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(inter); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl, der
}

func serialOf(c *x509.Certificate) string { return fmt.Sprintf("%032x", c.SerialNumber) }

func listedSerials(crl *x509.RevocationList) map[string]bool {
	m := map[string]bool{}
	for _, r := range crl.RevokedCertificateEntries {
		m[serialHex(r.SerialNumber)] = true
	}
	return m
}

func writePEM(t *testing.T, path, typ string, der ...[]byte) {
	t.Helper()
	var b []byte
	for _, d := range der {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func openssl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// OIDs of the extensions zdps puts into an operational certificate, and
// nothing else.
var (
	oidSubjectKeyID = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstr  = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidCRLDP        = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAuthKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtKeyUsage  = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// TestCAExportVerifiesIssued is the "what must hold" of issue 3: a leaf
// issued from a CSR that asks for SANs and CA rights verifies against the
// exported bundle with openssl, and carries exactly the policy's fields.
func TestCAExportVerifiesIssued(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	const crlURL = "http://crl.example.net/zdps.crl"
	f := newCAFixture(t, "--crl-url", crlURL)
	key := f.enroll(t, "csr-greedy")
	if _, err := f.c.PutEnrollment(context.Background(), &enrollment.IndividualEnrollment{
		RegistrationID: "csr-greedy", DeviceID: "device-from-policy", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}

	// A CSR asking for everything a device should not get.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	u, _ := url.Parse("spiffe://evil/admin")
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "csr-greedy", Organization: []string{"Evil Corp"}},
		DNSNames:        []string{"zdps.example.net", "*.example.net"},
		IPAddresses:     []net.IP{net.ParseIP("10.0.0.1")},
		EmailAddresses:  []string{"root@example.net"},
		URIs:            []*url.URL{u},
		ExtraExtensions: []pkix.Extension{{Id: oidBasicConstr, Critical: true, Value: bc}},
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf := f.register(t, device.Config{RegistrationID: "csr-greedy", SymmetricKey: key, CSR: csr})

	dir := t.TempDir()
	bundle, leafFile := filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "leaf.pem")
	f.zdps(t, "ca", "export", "--out", bundle)
	writePEM(t, leafFile, "CERTIFICATE", leaf.Raw)
	if out := openssl(t, "verify", "-CAfile", bundle, "-purpose", "sslclient", leafFile); !strings.Contains(out, "OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	// Standard output gives the same bundle.
	b, _ := os.ReadFile(bundle)
	if out := f.zdps(t, "ca", "export"); out != string(b) {
		t.Error("export to stdout differs from --out")
	}

	var got []string
	for _, e := range leaf.Extensions {
		got = append(got, e.Id.String())
	}
	want := []string{oidKeyUsage.String(), oidExtKeyUsage.String(), oidBasicConstr.String(), oidSubjectKeyID.String(), oidAuthKeyID.String(), oidCRLDP.String()}
	slices.Sort(got)
	slices.Sort(want)
	checks := []struct {
		name string
		ok   bool
		got  any
	}{
		{"extensions are exactly the policy's", slices.Equal(got, want), got},
		{"subject is CN = device ID only", leaf.Subject.String() == "CN=device-from-policy" && len(leaf.Subject.Names) == 1, leaf.Subject.String()},
		{"no SANs", len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses)+len(leaf.URIs) == 0, []any{leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, leaf.URIs}},
		{"clientAuth only", slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) && len(leaf.UnknownExtKeyUsage) == 0, leaf.ExtKeyUsage},
		{"digitalSignature only", leaf.KeyUsage == x509.KeyUsageDigitalSignature, leaf.KeyUsage},
		{"not a CA", leaf.BasicConstraintsValid && !leaf.IsCA, leaf.IsCA},
		{"CRL distribution point", slices.Equal(leaf.CRLDistributionPoints, []string{crlURL}), leaf.CRLDistributionPoints},
		{"serial has at least 64 bits", leaf.SerialNumber.BitLen() > 64, leaf.SerialNumber.BitLen()},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("got %v", c.got)
			}
		})
	}
}

// TestCARevocationCRL: each change that withdraws a device's right puts
// its certificates into the CRL served by a real zdps serve, with a
// growing CRL number, and openssl and `zdps ca crl` read it.
func TestCARevocationCRL(t *testing.T) {
	f := newCAFixture(t)
	ctx := context.Background()
	info, err := f.c.GetCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bundlePEM, err := f.c.CABundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := cmdutil.ParsePEMCertificates(bundlePEM)
	if err != nil || len(certs) != 2 {
		t.Fatalf("bundle: %d certificates, %v", len(certs), err)
	}
	inter := certs[0]
	if info.Intermediate.Serial != fmt.Sprintf("%x", inter.SerialNumber) {
		t.Fatalf("GET /ca intermediate %s, bundle %x", info.Intermediate.Serial, inter.SerialNumber)
	}

	bystander := f.register(t, device.Config{RegistrationID: "bystander", SymmetricKey: f.enroll(t, "bystander")})
	tests := []struct {
		name string
		// setup registers devices and returns their leaves; change
		// withdraws them.
		setup  func(t *testing.T) []*x509.Certificate
		change func(t *testing.T)
	}{
		{
			name: "registration deleted",
			setup: func(t *testing.T) []*x509.Certificate {
				k := f.enroll(t, "rev-record")
				// Two certificates for one registration: both go.
				return []*x509.Certificate{
					f.register(t, device.Config{RegistrationID: "rev-record", SymmetricKey: k}),
					f.register(t, device.Config{RegistrationID: "rev-record", SymmetricKey: k}),
				}
			},
			change: func(t *testing.T) {
				if err := f.c.DeleteRegistration(ctx, "rev-record", ""); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "enrollment disabled",
			setup: func(t *testing.T) []*x509.Certificate {
				return []*x509.Certificate{f.register(t, device.Config{RegistrationID: "rev-disabled", SymmetricKey: f.enroll(t, "rev-disabled")})}
			},
			change: func(t *testing.T) {
				e, err := f.c.GetEnrollment(ctx, "rev-disabled")
				if err != nil {
					t.Fatal(err)
				}
				e.ProvisioningStatus = enrollment.StatusDisabled
				if _, err := f.c.PutEnrollment(ctx, e, e.ETag); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "enrollment deleted",
			setup: func(t *testing.T) []*x509.Certificate {
				return []*x509.Certificate{f.register(t, device.Config{RegistrationID: "rev-deleted", SymmetricKey: f.enroll(t, "rev-deleted")})}
			},
			change: func(t *testing.T) {
				if err := f.c.DeleteEnrollment(ctx, "rev-deleted", ""); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "group disabled, several devices",
			setup: func(t *testing.T) []*x509.Certificate {
				gk := f.group(t, "rev-group")
				var out []*x509.Certificate
				for i := range 5 {
					out = append(out, f.register(t, device.Config{RegistrationID: fmt.Sprintf("rev-group-dev-%d", i), GroupKey: gk}))
				}
				return out
			},
			change: func(t *testing.T) {
				g, err := f.c.GetGroup(ctx, "rev-group")
				if err != nil {
					t.Fatal(err)
				}
				g.ProvisioningStatus = enrollment.StatusDisabled
				if _, err := f.c.PutGroup(ctx, g, g.ETag); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	last, _ := f.fetchCRL(t, inter)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaves := tc.setup(t)
			before, _ := f.fetchCRL(t, inter)
			for _, l := range leaves {
				if listedSerials(before)[serialOf(l)] {
					t.Fatalf("%s listed before the change", serialOf(l))
				}
			}
			tc.change(t)
			crl, _ := f.fetchCRL(t, inter)
			listed := listedSerials(crl)
			for _, l := range leaves {
				if !listed[serialOf(l)] {
					t.Errorf("%s (%s) not in the CRL", serialOf(l), l.Subject.CommonName)
				}
			}
			if listed[serialOf(bystander)] {
				t.Error("the bystander was revoked")
			}
			if crl.Number.Cmp(last.Number) <= 0 {
				t.Errorf("CRL number %v after %v", crl.Number, last.Number)
			}
			last = crl
		})
	}

	t.Run("unchanged CRL is not re-signed", func(t *testing.T) {
		a, derA := f.fetchCRL(t, inter)
		_, derB := f.fetchCRL(t, inter)
		if string(derA) != string(derB) || a.Number.Cmp(last.Number) != 0 {
			t.Error("a second fetch without a change answered a different CRL")
		}
	})

	t.Run("openssl reads and verifies the CRL", func(t *testing.T) {
		if _, err := exec.LookPath("openssl"); err != nil {
			t.Skip("openssl not installed")
		}
		dir := t.TempDir()
		_, der := f.fetchCRL(t, inter)
		crlFile, bundle := filepath.Join(dir, "zdps.crl"), filepath.Join(dir, "bundle.pem")
		if err := os.WriteFile(crlFile, der, 0o644); err != nil {
			t.Fatal(err)
		}
		f.zdps(t, "ca", "export", "--out", bundle)
		out := openssl(t, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", bundle, "-noout", "-text")
		if !strings.Contains(out, "verify OK") || !strings.Contains(out, "Revoked Certificates") {
			t.Errorf("openssl crl:\n%s", out)
		}
		for _, s := range []string{"Privilege Withdrawn", "Cessation Of Operation"} {
			if !strings.Contains(out, s) {
				t.Errorf("openssl crl output lacks reason %q", s)
			}
		}
	})

	t.Run("zdps ca crl", func(t *testing.T) {
		var sum crlSummary
		if err := json.Unmarshal([]byte(f.zdps(t, "ca", "crl", "-o", "json")), &sum); err != nil {
			t.Fatal(err)
		}
		if !sum.SignatureVerified || sum.Number != last.Number.String() || len(sum.Revoked) != len(last.RevokedCertificateEntries) {
			t.Errorf("summary %+v, want number %v with %d entries", sum, last.Number, len(last.RevokedCertificateEntries))
		}
		table := f.zdps(t, "ca", "crl")
		for _, want := range []string{"CRL number:", last.Number.String(), "verified", "SERIAL", "privilegeWithdrawn", "cessationOfOperation"} {
			if !strings.Contains(table, want) {
				t.Errorf("table lacks %q:\n%s", want, table)
			}
		}
		dir := t.TempDir()
		pemFile := filepath.Join(dir, "zdps.crl.pem")
		f.zdps(t, "ca", "crl", "--out", pemFile, "--pem")
		b, _ := os.ReadFile(pemFile)
		if blk, _ := pem.Decode(b); blk == nil || blk.Type != "X509 CRL" {
			t.Errorf("--pem --out wrote %q", b)
		}
		if out := f.zdps(t, "ca", "crl", "--pem"); !strings.HasPrefix(out, "-----BEGIN X509 CRL-----") {
			t.Errorf("--pem without --out printed %q", out)
		}
	})

	t.Run("zdps ca show", func(t *testing.T) {
		out := f.zdps(t, "ca", "show")
		for _, want := range []string{"ROLE", "root", "intermediate", info.Root.SHA256Thumbprint, info.Intermediate.Serial} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		var got client.CAInfo
		if err := json.Unmarshal([]byte(f.zdps(t, "ca", "show", "-o", "json")), &got); err != nil || !reflect.DeepEqual(got, *info) {
			t.Errorf("show -o json: %+v, %v", got, err)
		}
	})
}

// TestCACertificateCommands runs the proof-of-possession flow with
// certificates made in the test, then removes the CA certificate.
func TestCACertificateCommands(t *testing.T) {
	f := newCAFixture(t)
	dir := t.TempDir()
	root := testpki.Issue(t, "PoP Test Root", true, nil)
	rootFile := filepath.Join(dir, "root.pem")
	writePEM(t, rootFile, "CERTIFICATE", root.Cert.Raw)

	var added enrollment.CACertificate
	if err := json.Unmarshal([]byte(f.zdps(t, "ca", "add", "my-root", "--cert", rootFile, "-o", "json")), &added); err != nil {
		t.Fatal(err)
	}
	if added.IsVerified || added.Info == nil || added.Info.SubjectName != "CN=PoP Test Root" {
		t.Fatalf("added %+v", added)
	}
	var vc client.VerificationCode
	if err := json.Unmarshal([]byte(f.zdps(t, "ca", "verification-code", "my-root", "-o", "json")), &vc); err != nil || vc.Code == "" {
		t.Fatalf("verification code %+v, %v", vc, err)
	}

	// A proof signed by another key is refused; the one signed by the
	// CA's key verifies.
	impostor := testpki.Issue(t, vc.Code, false, nil)
	badFile := filepath.Join(dir, "bad.pem")
	writePEM(t, badFile, "CERTIFICATE", impostor.Cert.Raw)
	if code, _, errOut := runZdps(t, append([]string{"ca", "verify", "my-root", "--cert", badFile}, f.data...)...); code == 0 {
		t.Fatal("a proof signed by another key was accepted")
	} else if !strings.HasPrefix(errOut, "zdps: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("not one line: %q", errOut)
	}
	proof := testpki.Issue(t, vc.Code, false, root)
	proofFile := filepath.Join(dir, "proof.der")
	if err := os.WriteFile(proofFile, proof.Cert.Raw, 0o644); err != nil { // DER is accepted too
		t.Fatal(err)
	}
	out := f.zdps(t, "ca", "verify", "my-root", "--cert", proofFile)
	if !strings.Contains(out, "my-root") || !strings.Contains(out, "true") {
		t.Errorf("verify:\n%s", out)
	}
	out = f.zdps(t, "ca", "list")
	if !strings.Contains(out, "my-root") || !strings.Contains(out, "CN=PoP Test Root") || !strings.Contains(out, "true") {
		t.Errorf("list:\n%s", out)
	}

	failures := []struct {
		name string
		args []string
		want string
	}{
		{"add existing", []string{"ca", "add", "my-root", "--cert", rootFile}, `CA certificate "my-root" already exists`},
		{"add without --cert", []string{"ca", "add", "other"}, "--cert FILE is required"},
		{"add missing file", []string{"ca", "add", "other", "--cert", filepath.Join(dir, "nope.pem")}, "nope.pem"},
		{"add bad name", []string{"ca", "add", "bad/name", "--cert", rootFile}, "invalid name"},
		{"code for unknown", []string{"ca", "verification-code", "unknown"}, `CA certificate "unknown" not found`},
		{"verify unknown", []string{"ca", "verify", "unknown", "--cert", proofFile}, `CA certificate "unknown" not found`},
		{"unknown subcommand", []string{"ca", "frobnicate"}, "unknown command"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runZdps(t, append(tc.args, f.data...)...)
			if code == 0 {
				t.Fatalf("succeeded: %s", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q lacks %q", errOut, tc.want)
			}
		})
	}

	if out := f.zdps(t, "ca", "remove", "my-root"); !strings.Contains(out, `"my-root" removed`) {
		t.Errorf("remove: %s", out)
	}
	if out := f.zdps(t, "ca", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("list after remove: %s", out)
	}
}
