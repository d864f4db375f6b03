package tpmatt_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ekDev is a simulated device with its parsed EK.
type ekDev struct {
	*dev
	ek *tpm.Public
}

// ekFixture is a simulated device, a TPM manufacturer root (the only one
// in roots) and a stranger CA that issues look-alike EK certificates.
func ekFixture(t *testing.T) (d ekDev, roots *x509.CertPool, root, stranger *testpki.Cert) {
	t.Helper()
	root = testpki.Issue(t, "TPM Manufacturer Root", true, nil)
	stranger = testpki.Issue(t, "Unknown Manufacturer", true, nil)
	roots = x509.NewCertPool()
	roots.AddCert(root.Cert)
	d.dev = newDev(t)
	ek, err := tpm.ParseEK(d.tpm.EndorsementKey())
	if err != nil {
		t.Fatal(err)
	}
	d.ek = ek
	return d, roots, root, stranger
}

// TestEKCertificatePolicy: which devices must prove their EK with a
// manufacturer certificate (the instance's EKRequired, the enrollment's
// requireEndorsementKeyCertificate), where the certificate comes from
// (the payload first, else the enrollment), and that one supplied is
// checked even when not required.
func TestEKCertificatePolicy(t *testing.T) {
	d, roots, root, stranger := ekFixture(t)
	good := testpki.EKCertificate(t, root, d.ek.Key, time.Now().Add(24*time.Hour))
	forged := testpki.EKCertificate(t, stranger, d.ek.Key, time.Now().Add(24*time.Hour))
	payload := func(der []byte) []byte {
		return []byte(`{"tpmEkCertificate":"` + base64.StdEncoding.EncodeToString(der) + `"}`)
	}

	withRoots := func(c *tpmatt.Config) { c.EKRoots = roots }
	required := func(c *tpmatt.Config) { c.EKRoots, c.EKRequired = roots, true }
	tests := []struct {
		name      string
		cfg       []func(*tpmatt.Config)
		enrolled  string // the enrollment's endorsementKeyCertificate
		require   bool   // the enrollment's requireEndorsementKeyCertificate
		payload   []byte
		challenge bool
	}{
		{name: "no roots, nothing required", challenge: true},
		{name: "no roots, a certificate supplied is not checked", payload: payload(forged), challenge: true},
		{name: "no roots, the enrollment requires one", require: true},
		{name: "roots, not required, none supplied", cfg: []func(*tpmatt.Config){withRoots}, challenge: true},
		{name: "roots, a good one in the payload", cfg: []func(*tpmatt.Config){withRoots}, payload: payload(good), challenge: true},
		{name: "roots, a forged one in the payload", cfg: []func(*tpmatt.Config){withRoots}, payload: payload(forged)},
		{name: "roots, the enrollment's is good", cfg: []func(*tpmatt.Config){withRoots}, enrolled: base64.StdEncoding.EncodeToString(good), challenge: true},
		{name: "roots, the enrollment's in PEM", cfg: []func(*tpmatt.Config){withRoots}, enrolled: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good})), challenge: true},
		{name: "roots, the enrollment's is forged", cfg: []func(*tpmatt.Config){withRoots}, enrolled: base64.StdEncoding.EncodeToString(forged)},
		{name: "roots, the payload's comes first", cfg: []func(*tpmatt.Config){withRoots}, enrolled: base64.StdEncoding.EncodeToString(good), payload: payload(forged)},
		{name: "roots, the enrollment requires one, none", cfg: []func(*tpmatt.Config){withRoots}, require: true},
		{name: "roots, the enrollment requires one, given", cfg: []func(*tpmatt.Config){withRoots}, require: true, payload: payload(good), challenge: true},
		{name: "instance requires one, none", cfg: []func(*tpmatt.Config){required}},
		{name: "instance requires one, the enrollment's", cfg: []func(*tpmatt.Config){required}, enrolled: base64.StdEncoding.EncodeToString(good), challenge: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg...)
			en := &enrollment.IndividualEnrollment{
				RegistrationID: d.regID, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{
					EndorsementKey:                   base64.StdEncoding.EncodeToString(d.tpm.EndorsementKey()),
					EndorsementKeyCertificate:        tc.enrolled,
					RequireEndorsementKeyCertificate: tc.require,
				}}},
			}
			if _, err := e.st.Enrollments.Put(context.Background(), en, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			_, err := e.svc.Register(context.Background(), &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body(), Payload: tc.payload})
			var ch *port.TPMChallenge
			switch gotChallenge := errors.As(err, &ch); {
			case gotChallenge != tc.challenge:
				t.Fatalf("Register = %v, challenge want %v", err, tc.challenge)
			case !gotChallenge && !errors.Is(err, port.ErrUnauthorized):
				t.Fatalf("Register = %v, want ErrUnauthorized", err)
			}
			if !tc.challenge && len(tc.cfg) == 0 && !strings.Contains(e.logs.String(), "--tpm-ek-roots") {
				t.Errorf("the refusal does not name the missing configuration:\n%s", e.logs.String())
			}
		})
	}
}

// TestCheckEnrollment: the write-time check of an enrollment's EK
// certificate, with and without manufacturer roots.
func TestCheckEnrollment(t *testing.T) {
	d, roots, root, stranger := ekFixture(t)
	ek := d.ek
	// One simulator per process: the other TPM's EK is a bare RSA key.
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherEK, err := tpm.ParseEK(tpm.EKTemplatePublic(&k.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	good := b64(testpki.EKCertificate(t, root, ek.Key, time.Now().Add(24*time.Hour)))
	forged := b64(testpki.EKCertificate(t, stranger, ek.Key, time.Now().Add(24*time.Hour)))
	otherKey := b64(testpki.EKCertificate(t, root, otherEK.Key, time.Now().Add(24*time.Hour)))
	tests := []struct {
		name     string
		roots    bool
		ek, cert string
		field    string // "" when accepted
	}{
		{"none", true, b64(d.tpm.EndorsementKey()), "", ""},
		{"good, no roots", false, b64(d.tpm.EndorsementKey()), good, ""},
		{"good, roots", true, b64(d.tpm.EndorsementKey()), good, ""},
		{"another manufacturer, no roots: not checked yet", false, b64(d.tpm.EndorsementKey()), forged, ""},
		{"another manufacturer, roots", true, b64(d.tpm.EndorsementKey()), forged, "attestation.tpm.endorsementKeyCertificate"},
		{"another TPM's certificate", false, b64(d.tpm.EndorsementKey()), otherKey, "attestation.tpm.endorsementKeyCertificate"},
		{"not a certificate", false, b64(d.tpm.EndorsementKey()), b64([]byte("not a certificate")), "attestation.tpm.endorsementKeyCertificate"},
		{"endorsement key unparsable", false, b64([]byte{1, 2, 3}), good, "attestation.tpm.endorsementKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *tpmatt.Config) {
				if tc.roots {
					c.EKRoots = roots
				}
			})
			err := e.att.CheckEnrollment(&enrollment.IndividualEnrollment{RegistrationID: d.regID, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
				Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{EndorsementKey: tc.ek, EndorsementKeyCertificate: tc.cert}}}})
			var ve *enrollment.ValidationError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("CheckEnrollment = %v, want accepted", err)
			case tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field):
				t.Fatalf("CheckEnrollment = %v, want a ValidationError on %s", err, tc.field)
			}
		})
	}
}
