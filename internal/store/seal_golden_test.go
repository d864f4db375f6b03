package store_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

var updateSealed = flag.Bool("update", false, "rewrite testdata/sealed-*.json")

// sealGoldenFixtures are documents as a zdps of format v1 stored them,
// sealed under sealTestKEK. They must open forever: the HKDF info, the
// associated data ("<bucket>\x00<key>\x00<field>") and the field names
// are a stored format, not an implementation detail.
var sealGoldenFixtures = []struct {
	file   string
	bucket store.Bucket
	key    string
	check  func(t *testing.T, s *store.Store)
}{
	{"sealed-enrollment-v1.json", store.BucketEnrollments, "golden-dev-1", func(t *testing.T, s *store.Store) {
		e, err := s.Enrollments.Get(t.Context(), "golden-dev-1")
		if err != nil {
			t.Fatal(err)
		}
		if e.Attestation.SymmetricKey.PrimaryKey != sealTestKey(1) || e.Attestation.SymmetricKey.SecondaryKey != sealTestKey(2) || e.CustomAllocationDefinition.WebhookURL != sealTestWebhook {
			t.Fatalf("read back as %+v %+v", e.Attestation.SymmetricKey, e.CustomAllocationDefinition)
		}
	}},
	{"sealed-group-v1.json", store.BucketGroups, "golden-group-1", func(t *testing.T, s *store.Store) {
		g, err := s.Groups.Get(t.Context(), "golden-group-1")
		if err != nil {
			t.Fatal(err)
		}
		if g.Attestation.SymmetricKey.PrimaryKey != sealTestKey(3) || g.Attestation.SymmetricKey.SecondaryKey != sealTestKey(4) {
			t.Fatalf("read back as %+v", g.Attestation.SymmetricKey)
		}
	}},
	{"sealed-policy-v1.json", store.BucketPolicies, "golden-reader", func(t *testing.T, s *store.Store) {
		p, err := s.Policies.Get(t.Context(), "golden-reader")
		if err != nil {
			t.Fatal(err)
		}
		if p.PrimaryKey != sealTestKey(5) || p.SecondaryKey != sealTestKey(6) {
			t.Fatalf("read back as %+v", p)
		}
	}},
}

func TestSealedFormatIsStable(t *testing.T) {
	if *updateSealed {
		b := memory.New()
		sealTestDocs(t, store.New(b, nil, store.WithSealer(sealTestBox(t))), "golden-")
		for _, f := range sealGoldenFixtures {
			v, err := sealedGetRaw(t, b, f.bucket, f.key)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", f.file), append(v, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := memory.New()
	for _, f := range sealGoldenFixtures {
		raw, err := os.ReadFile(filepath.Join("testdata", f.file))
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.TrimSpace(raw)
		if leaks := sealTestLeaks(map[string][]byte{f.file: raw}, []string{sealTestKey(1), sealTestKey(2), sealTestKey(3), sealTestKey(4), sealTestKey(5), sealTestKey(6), sealTestWebhook}); len(leaks) > 0 {
			t.Fatalf("fixture holds plaintext: %v", leaks)
		}
		err = b.Update(t.Context(), func(tx store.Tx) error {
			_, err := tx.Put(t.Context(), f.bucket, f.key, raw, store.Condition{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s := store.New(b, nil, store.WithSealer(sealTestBox(t)))
	for _, f := range sealGoldenFixtures {
		t.Run(f.file, func(t *testing.T) { f.check(t, s) })
	}
	// The fixture's own fields are what the enrollment types declare.
	e := &enrollment.IndividualEnrollment{Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{SymmetricKey: &enrollment.SymmetricKeyAttestation{}}, CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{}}}
	var names []string
	for _, s := range e.Secrets() {
		names = append(names, s.Field)
	}
	if got, want := names, []string{"attestation.symmetricKey.primaryKey", "attestation.symmetricKey.secondaryKey", "customAllocationDefinition.webhookUrl"}; !equalStrings(got, want) {
		t.Fatalf("secret fields %v, want %v (a renamed field no longer opens what is stored)", got, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sealedGetRaw(t *testing.T, b store.Backend, bk store.Bucket, key string) ([]byte, error) {
	var v []byte
	err := b.View(t.Context(), func(tx store.Tx) error {
		it, err := tx.Get(t.Context(), bk, key)
		v = it.Value
		return err
	})
	return v, err
}
