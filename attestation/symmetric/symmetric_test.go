package symmetric

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

const scope = "0ne00000001"

var now = time.Unix(1_700_000_000, 0)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// fakeLookup is an in-memory Lookup.
type fakeLookup struct {
	individuals map[string]*enrollment.IndividualEnrollment
	groups      []*enrollment.EnrollmentGroup
	err         error
}

func (f *fakeLookup) IndividualEnrollment(_ context.Context, id string) (*enrollment.IndividualEnrollment, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.individuals[enrollment.Key(id)], nil
}

func (f *fakeLookup) SymmetricKeyGroups(context.Context) ([]*enrollment.EnrollmentGroup, error) {
	return f.groups, f.err
}

func symAttestation(primary, secondary []byte) *enrollment.AttestationMechanism {
	return &enrollment.AttestationMechanism{
		Type:         enrollment.AttestationSymmetricKey,
		SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: b64(primary), SecondaryKey: b64(secondary)},
	}
}

var (
	devIndividual = &enrollment.IndividualEnrollment{RegistrationID: "dev-individual", Spec: enrollment.Spec{Attestation: symAttestation(key(1), key(2))}}
	devDisabled   = &enrollment.IndividualEnrollment{RegistrationID: "dev-disabled", Spec: enrollment.Spec{ProvisioningStatus: enrollment.StatusDisabled, Attestation: symAttestation(key(3), key(4))}}
	devTPM        = &enrollment.IndividualEnrollment{RegistrationID: "dev-tpm", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{EndorsementKey: "AAAA"}}}}
	groupX509     = &enrollment.EnrollmentGroup{EnrollmentGroupID: "x509-group", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509}}}
	groupA        = &enrollment.EnrollmentGroup{EnrollmentGroupID: "group-a", Spec: enrollment.Spec{Attestation: symAttestation(key(10), key(11))}}
	groupB        = &enrollment.EnrollmentGroup{EnrollmentGroupID: "group-b", Spec: enrollment.Spec{Attestation: symAttestation(key(20), key(21))}}
)

func newFake() *fakeLookup {
	return &fakeLookup{
		individuals: map[string]*enrollment.IndividualEnrollment{
			"dev-individual": devIndividual,
			"dev-disabled":   devDisabled,
			"dev-tpm":        devTPM,
		},
		groups: []*enrollment.EnrollmentGroup{nil, groupX509, groupA, groupB},
	}
}

func newVerifier(t testing.TB, l Lookup) *Verifier {
	t.Helper()
	v, err := New(Config{Lookup: l, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func resource(id string) string { return scope + "/registrations/" + id }

// token signs resource as given (raw or encoded) with the SDKs' skn.
func token(k []byte, sr string, expiry time.Time) string {
	return sas.Build(k, sr, "registration", expiry)
}

func derived(group []byte, id string) []byte { return sas.DeriveDeviceKey(group, id) }

func TestVerify(t *testing.T) {
	hour := now.Add(time.Hour)
	tests := []struct {
		name       string
		id         string
		auth       string
		wantErr    error
		wantEnroll *enrollment.IndividualEnrollment
		wantGroup  *enrollment.EnrollmentGroup
	}{
		{name: "individual primary key", id: "dev-individual", auth: token(key(1), resource("dev-individual"), hour), wantEnroll: devIndividual},
		{name: "individual secondary key", id: "dev-individual", auth: token(key(2), resource("dev-individual"), hour), wantEnroll: devIndividual},
		{name: "registration ID in another case", id: "DEV-Individual", auth: token(key(1), resource("DEV-Individual"), hour), wantEnroll: devIndividual},
		{name: "sr case differs from path", id: "dev-individual", auth: token(key(1), "0NE00000001/Registrations/DEV-INDIVIDUAL", hour), wantEnroll: devIndividual},
		{name: "sr encoded upper-case hex (node tpm)", id: "dev-individual", auth: token(key(1), "0ne00000001%2Fregistrations%2Fdev-individual", hour), wantEnroll: devIndividual},
		{name: "sr encoded lower-case hex (c sdk)", id: "dev-individual", auth: token(key(1), strings.ToLower(url.QueryEscape(resource("dev-individual"))), hour), wantEnroll: devIndividual},
		{name: "disabled enrollment is reported, not refused", id: "dev-disabled", auth: token(key(3), resource("dev-disabled"), hour), wantEnroll: devDisabled},
		{name: "individual wrong key", id: "dev-individual", auth: token(key(9), resource("dev-individual"), hour), wantErr: ErrUnauthorized},
		{name: "individual enrollment decides alone: group-derived key refused", id: "dev-individual", auth: token(derived(key(10), "dev-individual"), resource("dev-individual"), hour), wantErr: ErrUnauthorized},
		{name: "another device's key", id: "dev-individual", auth: token(key(3), resource("dev-individual"), hour), wantErr: ErrUnauthorized},
		{name: "group primary derived key", id: "sensor-1", auth: token(derived(key(10), "sensor-1"), resource("sensor-1"), hour), wantGroup: groupA},
		{name: "group secondary derived key", id: "sensor-1", auth: token(derived(key(11), "sensor-1"), resource("sensor-1"), hour), wantGroup: groupA},
		{name: "second group", id: "sensor-1", auth: token(derived(key(21), "sensor-1"), resource("sensor-1"), hour), wantGroup: groupB},
		{name: "group key used directly", id: "sensor-1", auth: token(key(10), resource("sensor-1"), hour), wantErr: ErrUnauthorized},
		{name: "key derived for another device", id: "sensor-1", auth: token(derived(key(10), "sensor-2"), resource("sensor-1"), hour), wantErr: ErrUnauthorized},
		{name: "individual enrollment of another type falls through to groups", id: "dev-tpm", auth: token(derived(key(20), "dev-tpm"), resource("dev-tpm"), hour), wantGroup: groupB},
		{name: "no enrollment", id: "nobody", auth: token(key(1), resource("nobody"), hour), wantErr: ErrUnauthorized},
		{name: "wrong scope", id: "dev-individual", auth: token(key(1), "0ne00000002/registrations/dev-individual", hour), wantErr: ErrUnauthorized},
		{name: "token for another registration", id: "dev-individual", auth: token(key(1), resource("dev-disabled"), hour), wantErr: ErrUnauthorized},
		{name: "resource with a suffix", id: "dev-individual", auth: token(key(1), resource("dev-individual")+"/x", hour), wantErr: ErrUnauthorized},
		{name: "expired within skew", id: "dev-individual", auth: token(key(1), resource("dev-individual"), now.Add(-4*time.Minute)), wantEnroll: devIndividual},
		{name: "expired beyond skew", id: "dev-individual", auth: token(key(1), resource("dev-individual"), now.Add(-6*time.Minute)), wantErr: ErrExpired},
		{name: "expired and wrong key", id: "sensor-1", auth: token(key(99), resource("sensor-1"), now.Add(-time.Hour)), wantErr: ErrExpired},
		{name: "not a SAS", id: "dev-individual", auth: "Bearer abc", wantErr: ErrMalformed},
		{name: "empty authorization", id: "dev-individual", auth: "", wantErr: ErrMalformed},
		{name: "invalid registration ID", id: "-bad", auth: token(key(1), resource("-bad"), hour), wantErr: ErrMalformed},
	}
	v := newVerifier(t, newFake())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := v.Verify(context.Background(), scope, tc.id, tc.auth)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if res != nil {
					t.Fatalf("Verify returned a result with an error: %+v", res)
				}
				return
			}
			if res.Enrollment != tc.wantEnroll || res.Group != tc.wantGroup {
				t.Fatalf("Verify = %+v, want enrollment %v group %v", res, tc.wantEnroll, tc.wantGroup)
			}
		})
	}
}

func TestVerifyExpiredWrapsSAS(t *testing.T) {
	v := newVerifier(t, newFake())
	_, err := v.Verify(context.Background(), scope, "dev-individual", token(key(1), resource("dev-individual"), now.Add(-time.Hour)))
	if !errors.Is(err, ErrExpired) || !errors.Is(err, sas.ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired wrapping sas.ErrExpired", err)
	}
}

func TestVerifyLookupFailureIsNotARefusal(t *testing.T) {
	boom := errors.New("store down")
	v := newVerifier(t, &fakeLookup{err: boom})
	_, err := v.Verify(context.Background(), scope, "dev-individual", token(key(1), resource("dev-individual"), now.Add(time.Hour)))
	if !errors.Is(err, boom) || errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want the lookup error and not ErrUnauthorized", err)
	}
}

func TestVerifyDocumentedVector(t *testing.T) {
	const id = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	groupKey := "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	deviceKey, _ := base64.StdEncoding.DecodeString("Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=")
	g := &enrollment.EnrollmentGroup{EnrollmentGroupID: "vector", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
		Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: groupKey},
	}}}
	v := newVerifier(t, &fakeLookup{groups: []*enrollment.EnrollmentGroup{g}})
	res, err := v.Verify(context.Background(), scope, id, token(deviceKey, resource(id), now.Add(time.Hour)))
	if err != nil || res.Group != g {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"defaults", Config{Lookup: newFake()}, false},
		{"no lookup", Config{}, true},
		{"negative skew", Config{Lookup: newFake(), Skew: -time.Second}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New error = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && (v.skew != DefaultSkew || v.now == nil) {
				t.Fatalf("defaults not applied: %+v", v)
			}
		})
	}
}

func BenchmarkVerifyIndividual(b *testing.B) {
	v := newVerifier(b, newFake())
	auth := token(key(2), resource("dev-individual"), now.Add(time.Hour)) // secondary: the slower path
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, scope, "dev-individual", auth); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyGroup(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			l := &fakeLookup{}
			for i := range n {
				l.groups = append(l.groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: fmt.Sprintf("g%d", i), Spec: enrollment.Spec{Attestation: symAttestation(key(byte(2*i)), key(byte(2*i+1)))}})
			}
			last := key(byte(2*n - 1)) // the last key tried: worst case
			auth := token(derived(last, "sensor-1"), resource("sensor-1"), now.Add(time.Hour))
			v := newVerifier(b, l)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, scope, "sensor-1", auth); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
