package posture_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

func put[T store.Document](t *testing.T, c *store.Collection[T], v T) {
	t.Helper()
	if _, err := c.Put(t.Context(), v, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func TestFindings(t *testing.T) {
	now := time.Now().UTC()
	old := now.Add(-400 * 24 * time.Hour)
	s := store.New(memory.New(), func() time.Time { return old })
	sym := func() *enrollment.AttestationMechanism {
		return &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: "a", SecondaryKey: "b"}}
	}
	put(t, s.Enrollments, &enrollment.IndividualEnrollment{RegistrationID: "never-used", Spec: enrollment.Spec{Attestation: sym()}})
	put(t, s.Enrollments, &enrollment.IndividualEnrollment{RegistrationID: "tpm-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{EndorsementKey: "x"}}}})
	put(t, s.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "sym-group", Spec: enrollment.Spec{Attestation: sym(),
		CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: "https://alloc.example.net/"}}})
	put(t, s.Groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "dice-line", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509}}})
	put(t, s.Hubs, &enrollment.Hub{Name: "hub-a", Status: "draining"})
	put(t, s.Registrations, &enrollment.Registration{RegistrationID: "dice-7", EnrollmentGroupID: "dice-line", AssignedHub: "hub-a", DICE: &firmware.DICEState{DeviceIDKey: "sha256:00"}})
	put(t, s.Registrations, &enrollment.Registration{RegistrationID: "tpm-1", AssignedHub: "hub-b"})
	put(t, s.CACertificates, &enrollment.CACertificate{Name: "vendor-ca"})
	put(t, revocation.Certificates(s.Backend, nil), &enrollment.Certificate{Serial: "01", RegistrationID: "dice-7", NotAfter: now.Add(5 * 24 * time.Hour)})
	put(t, revocation.Certificates(s.Backend, nil), &enrollment.Certificate{Serial: "02", RegistrationID: "tpm-1", NotAfter: now.Add(300 * 24 * time.Hour)})

	ca := []*x509.Certificate{{Subject: pkix.Name{CommonName: "zdps intermediate"}, NotAfter: now.Add(10 * 24 * time.Hour)}, {Subject: pkix.Name{CommonName: "zdps root"}, NotAfter: now.Add(3650 * 24 * time.Hour)}}
	rep, err := posture.Compute(t.Context(), posture.NewStoreSource(s), posture.Options{Now: func() time.Time { return now }, CA: ca,
		Settings: posture.Settings{RevokeOnDisable: false, MetricsOpen: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		count   int
		example string
	}{
		"ca-expiring":                  {1, "intermediate zdps intermediate expires " + ca[0].NotAfter.Format(time.DateOnly)},
		"revoke-on-disable-off":        {1, "--revoke-on-disable=false"},
		"dice-without-firmware-policy": {1, "group dice-line"},
		"metrics-open":                 {1, "/metrics"},
		"devices-on-bad-hubs":          {1, "dice-7 on hub-a"},
		"tpm-without-ek-check":         {1, "tpm-1"},
		"symmetric-key-groups":         {1, "sym-group"},
		"webhook-unsigned":             {1, "group sym-group"},
		"ca-unverified":                {1, "vendor-ca"},
		"old-keys":                     {2, "enrollment never-used"},
		"unused-enrollments":           {1, "never-used"},
		"certificates-expiring":        {1, "dice-7"},
	}
	got := map[string]posture.Finding{}
	for _, f := range rep.Findings {
		got[f.ID] = f
		if f.Remedy == "" || f.Title == "" {
			t.Errorf("finding %s lacks a title or remedy", f.ID)
		}
	}
	for id, w := range want {
		f, ok := got[id]
		if !ok || f.Count != w.count || f.Example != w.example {
			t.Errorf("%s: got %+v, want count %d example %q", id, f, w.count, w.example)
		}
	}
	if len(got) != len(want) {
		t.Errorf("findings %v", rep.Findings)
	}
	if rep.Findings[0].Severity != posture.SeverityHigh || rep.Score != 100-3*15-6*6-3*2 {
		t.Errorf("order or score: first %s, score %d", rep.Findings[0].Severity, rep.Score)
	}

	clean, err := posture.Compute(t.Context(), posture.NewStoreSource(store.New(memory.New(), nil)), posture.Options{Settings: posture.Settings{RevokeOnDisable: true, WebhookSecret: true}})
	if err != nil || clean.Score != 100 || len(clean.Findings) != 0 {
		t.Fatalf("empty store: %+v, %v", clean, err)
	}
}
