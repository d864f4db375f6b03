package enrollment

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestGenerateMissingKeys(t *testing.T) {
	existing := key16
	tests := []struct {
		name          string
		att           *AttestationMechanism
		wantGenerated int
	}{
		{"no symmetric key object", &AttestationMechanism{Type: AttestationSymmetricKey}, 2},
		{"secondary missing", &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: existing}}, 1},
		{"both present", &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: existing, SecondaryKey: existing}}, 0},
		{"x509 untouched", &AttestationMechanism{Type: AttestationX509, X509: &X509Attestation{CAReferences: &X509CAReferences{Primary: "ca"}}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, gen := range []func(*AttestationMechanism) error{
				func(a *AttestationMechanism) error {
					return (&IndividualEnrollment{Spec: Spec{Attestation: a}}).GenerateMissingKeys(bytes.NewReader(bytes.Repeat([]byte{7}, 256)))
				},
				func(a *AttestationMechanism) error {
					return (&EnrollmentGroup{Spec: Spec{Attestation: a}}).GenerateMissingKeys(bytes.NewReader(bytes.Repeat([]byte{7}, 256)))
				},
			} {
				a := tc.att.clone()
				if err := gen(a); err != nil {
					t.Fatal(err)
				}
				if a.Type != AttestationSymmetricKey {
					if a.SymmetricKey != nil {
						t.Fatal("keys added to a non-symmetric attestation")
					}
					continue
				}
				generated := 0
				for _, k := range []string{a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey} {
					b, err := DecodeKey(k)
					if err != nil {
						t.Fatalf("generated key invalid: %v", err)
					}
					if len(b) == GeneratedKeyBytes {
						generated++
					}
				}
				if generated != tc.wantGenerated {
					t.Fatalf("generated %d keys, want %d", generated, tc.wantGenerated)
				}
			}
		})
	}
}

func TestGenerateMissingKeysRandomFailure(t *testing.T) {
	e := &IndividualEnrollment{Spec: Spec{Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}}}
	boom := errors.New("no entropy")
	if err := e.GenerateMissingKeys(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	p := &SharedAccessPolicy{KeyName: "p", Rights: "EnrollmentRead"}
	if err := p.GenerateMissingKeys(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Fatal("short random source accepted")
	}
	if err := p.GenerateMissingKeys(bytes.NewReader(make([]byte, 128))); err != nil || len(p.Keys()) != 2 {
		t.Fatalf("policy keys: %v, %d", err, len(p.Keys()))
	}
}

func TestRedactedHasNoSecrets(t *testing.T) {
	pemText := readPEM(t, "device.pem")
	e, err := DecodeIndividualEnrollment([]byte(`{"registrationId":"dev1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + jsonString(pemText) + `}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := &IndividualEnrollment{RegistrationID: "dev2", Spec: Spec{Attestation: &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key64, SecondaryKey: key16}}}}
	g := &EnrollmentGroup{EnrollmentGroupID: "g", Spec: Spec{Attestation: s.Attestation.clone()}}
	p := &SharedAccessPolicy{KeyName: "p", Rights: "EnrollmentRead", PrimaryKey: key64, SecondaryKey: key16}
	pemBody := strings.Split(pemText, "\n")[1]
	tests := []struct {
		name     string
		redacted any
		secrets  []string
	}{
		{"x509 individual", e.Redacted(), []string{pemBody, "BEGIN CERTIFICATE"}},
		{"symmetric individual", s.Redacted(), []string{key64, key16}},
		{"symmetric group", g.Redacted(), []string{key64, key16}},
		{"policy", p.Redacted(), []string{key64, key16}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.redacted)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range tc.secrets {
				if bytes.Contains(b, []byte(secret)) {
					t.Fatalf("redacted form contains a secret: %s", b)
				}
			}
		})
	}
	if e.Attestation.X509.ClientCertificates.Primary.Certificate == "" || s.Attestation.SymmetricKey.PrimaryKey == "" || p.PrimaryKey == "" {
		t.Fatal("Redacted modified the original")
	}
	if r := e.Redacted(); r.Attestation.X509.ClientCertificates.Primary.Info == nil {
		t.Fatal("redacted certificate lost its info")
	}
}

func TestCloneIsDeep(t *testing.T) {
	b, err := DecodeIndividualEnrollment(mustRead(t, "testdata/individual_x509.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(b)
	c := b.Clone()
	c.IoTHubs[0] = "changed.example.com"
	c.InitialTwin.Tags[2] = 'X'
	c.Attestation.X509.ClientCertificates.Primary.Info.SubjectName = "changed"
	c.ReprovisionPolicy.MigrateDeviceData = false
	c.CustomAllocationDefinition.WebhookURL = "changed"
	after, _ := json.Marshal(b)
	if !bytes.Equal(before, after) {
		t.Fatal("mutating the clone changed the original")
	}
	gb, err := DecodeEnrollmentGroup(mustRead(t, "testdata/group_symmetric.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	gc := gb.Clone()
	gc.Attestation.SymmetricKey.PrimaryKey = "changed"
	gc.InitialTwin.Properties.Desired[2] = 'X'
	if gb.Attestation.SymmetricKey.PrimaryKey == "changed" || gb.InitialTwin.Properties.Desired[2] == 'X' {
		t.Fatal("mutating the group clone changed the original")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
