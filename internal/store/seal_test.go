package store_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/postgres"
	"github.com/zdps/zdps/internal/store/storetest"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// sealTestKEK is the KEK of these tests; sealTestBox seals under it.
var sealTestKEK = bytes.Repeat([]byte{0x5a}, 32)

func sealTestBox(t testing.TB) *sealed.Box {
	t.Helper()
	b, err := sealed.New(sealTestKEK)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealTestKey is a distinct, recognisable 64-byte key in base64.
func sealTestKey(n int) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(fmt.Sprintf("secret-%02d-", n)), 7)[:64])
}

const sealTestWebhook = "https://alloc.example/api/allocate?code=w3bh00k-funct10n-k3y"

// sealTestDocs writes an enrollment (symmetric keys and a webhook), a group
// and a policy with known secrets through s and returns those secrets.
func sealTestDocs(t *testing.T, s *store.Store, prefix string) []string {
	t.Helper()
	ctx := t.Context()
	e := &enrollment.IndividualEnrollment{
		RegistrationID: prefix + "Dev-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: sealTestKey(1), SecondaryKey: sealTestKey(2)}},
			AllocationPolicy:           enrollment.PolicyCustom,
			CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: sealTestWebhook, APIVersion: "2021-10-01"}},
	}
	g := &enrollment.EnrollmentGroup{
		EnrollmentGroupID: prefix + "group-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: sealTestKey(3), SecondaryKey: sealTestKey(4)}}},
	}
	p := &enrollment.SharedAccessPolicy{KeyName: prefix + "reader", PrimaryKey: sealTestKey(5), SecondaryKey: sealTestKey(6), Rights: enrollment.RightEnrollmentRead}
	if _, err := s.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Groups.Put(ctx, g, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Policies.Put(ctx, p, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	// Put leaves the caller's document in plaintext.
	if e.Attestation.SymmetricKey.PrimaryKey != sealTestKey(1) || e.CustomAllocationDefinition.WebhookURL != sealTestWebhook || p.SecondaryKey != sealTestKey(6) {
		t.Fatal("Put left sealed values in the caller's document")
	}
	return []string{sealTestKey(1), sealTestKey(2), sealTestWebhook, sealTestKey(3), sealTestKey(4), sealTestKey(5), sealTestKey(6)}
}

// sealTestRaw is every stored value of the secret buckets.
func sealTestRaw(t *testing.T, b store.Backend) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := b.View(t.Context(), func(tx store.Tx) error {
		for _, bk := range []store.Bucket{store.BucketEnrollments, store.BucketGroups, store.BucketPolicies} {
			items, err := tx.Scan(t.Context(), bk, "", "", 0)
			if err != nil {
				return err
			}
			for _, it := range items {
				out[string(bk)+"/"+it.Key] = it.Value
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sealTestLeaks names the secrets found in raw, in base64 or decoded form.
func sealTestLeaks(raw map[string][]byte, secrets []string) []string {
	var leaks []string
	for name, v := range raw {
		for _, s := range secrets {
			forms := [][]byte{[]byte(s)}
			if d, err := base64.StdEncoding.DecodeString(s); err == nil {
				forms = append(forms, d)
			}
			for _, f := range forms {
				if bytes.Contains(v, f) {
					leaks = append(leaks, fmt.Sprintf("%s holds %q", name, f))
				}
			}
		}
	}
	return leaks
}

func sealTestCheckReads(t *testing.T, s *store.Store, prefix string) {
	t.Helper()
	ctx := t.Context()
	e, err := s.Enrollments.Get(ctx, prefix+"dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Attestation.SymmetricKey.PrimaryKey != sealTestKey(1) || e.Attestation.SymmetricKey.SecondaryKey != sealTestKey(2) || e.CustomAllocationDefinition.WebhookURL != sealTestWebhook {
		t.Fatalf("enrollment read back as %+v %+v", e.Attestation.SymmetricKey, e.CustomAllocationDefinition)
	}
	if ks := e.Attestation.SymmetricKeys(); len(ks) != 2 {
		t.Fatalf("SymmetricKeys() = %d keys", len(ks))
	}
	gs, _, err := s.Groups.List(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range gs {
		if g.EnrollmentGroupID != prefix+"group-1" {
			continue
		}
		found = true
		if g.Attestation.SymmetricKey.PrimaryKey != sealTestKey(3) || g.Attestation.SymmetricKey.SecondaryKey != sealTestKey(4) {
			t.Fatalf("group listed as %+v", g.Attestation.SymmetricKey)
		}
	}
	if !found {
		t.Fatalf("group %sgroup-1 not listed", prefix)
	}
	p, err := s.Policies.Get(ctx, prefix+"READER")
	if err != nil || p.PrimaryKey != sealTestKey(5) || p.SecondaryKey != sealTestKey(6) || len(p.Keys()) != 2 {
		t.Fatalf("policy read back as %+v, %v", p, err)
	}
}

func TestSecretsSealedAtRest(t *testing.T) {
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			s := store.New(b, nil, store.WithSealer(sealTestBox(t)))
			secrets := sealTestDocs(t, s, "")
			raw := sealTestRaw(t, b)
			if len(raw) != 3 {
				t.Fatalf("%d documents stored, want 3", len(raw))
			}
			if leaks := sealTestLeaks(raw, secrets); len(leaks) > 0 {
				t.Fatalf("secrets in the clear at rest:\n%s", strings.Join(leaks, "\n"))
			}
			for name, v := range raw {
				if n := bytes.Count(v, []byte(`"`+sealed.Prefix)); n < 2 {
					t.Errorf("%s holds %d sealed values: %s", name, n, v)
				}
			}
			sealTestCheckReads(t, s, "")

			// A rewrite through Put (an update) reads and reseals.
			e, err := s.Enrollments.Get(t.Context(), "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			e.DeviceID = "renamed"
			if _, err := s.Enrollments.Put(t.Context(), e, store.Condition{IfMatch: e.ETag}); err != nil {
				t.Fatal(err)
			}
			if leaks := sealTestLeaks(sealTestRaw(t, b), secrets); len(leaks) > 0 {
				t.Fatalf("after update: %s", strings.Join(leaks, "\n"))
			}
			sealTestCheckReads(t, s, "")

			// Another store of the same backend without the KEK refuses
			// to hand out the sealed values as if they were keys.
			if _, err := store.New(b, nil).Enrollments.Get(t.Context(), "dev-1"); !errors.Is(err, store.ErrNoSealer) {
				t.Fatalf("Get without a sealer: %v, want ErrNoSealer", err)
			}
			other, _ := sealed.New(bytes.Repeat([]byte{1}, 32))
			if _, err := store.New(b, nil, store.WithSealer(other)).Policies.Get(t.Context(), "reader"); !errors.Is(err, store.ErrUnsealable) {
				t.Fatalf("Get under another KEK: %v, want ErrUnsealable", err)
			}
		})
	}
}

// A sealed value is bound to its record and field: moved elsewhere by
// someone who can write the store but lacks the KEK, it does not open.
func TestSealedSecretsCannotMove(t *testing.T) {
	b := testbackend.Bolt(t)
	s := store.New(b, nil, store.WithSealer(sealTestBox(t)))
	sealTestDocs(t, s, "a-")
	sealTestDocs(t, s, "b-")
	ctx := t.Context()
	raw := sealTestRaw(t, b)

	var a map[string]any
	if err := json.Unmarshal(raw["policies/a-reader"], &a); err != nil {
		t.Fatal(err)
	}
	swapped := map[string]any{}
	for k, v := range a {
		swapped[k] = v
	}
	swapped["primaryKey"], swapped["secondaryKey"] = a["secondaryKey"], a["primaryKey"]
	swappedJSON, _ := json.Marshal(swapped)
	renamed := map[string]any{}
	for k, v := range a {
		renamed[k] = v
	}
	renamed["keyName"] = "b-reader"
	renamedJSON, _ := json.Marshal(renamed)

	tests := []struct {
		name, key string
		value     []byte
	}{
		{"whole record to another key", "b-reader", raw["policies/a-reader"]},
		{"record renamed inside", "b-reader", renamedJSON},
		{"primary and secondary swapped", "a-reader", swappedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Put(ctx, store.BucketPolicies, tt.key, tt.value, store.Condition{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if p, err := s.Policies.Get(ctx, tt.key); !errors.Is(err, store.ErrUnsealable) || !errors.Is(err, sealed.ErrOpen) {
				t.Fatalf("Get = %+v, %v; want ErrUnsealable", p, err)
			}
		})
	}
}

// The startup migration: a store written with secrets in the clear (before
// sealing existed) is sealed in place, ETags and timestamps kept, and every
// secret still reads back.
func TestSealSecretsMigratesPlaintext(t *testing.T) {
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			b := be.Open(t)
			ctx := t.Context()
			legacy := store.New(b, nil) // no KEK: secrets in the clear, as before
			var secrets []string
			for i := range 7 {
				secrets = append(secrets, sealTestDocs(t, legacy, fmt.Sprintf("n%d-", i))...)
			}
			// A hub has no secret and must not be touched.
			if _, err := legacy.Hubs.Put(ctx, &enrollment.Hub{Name: "hub.example"}, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			before := sealTestRaw(t, b)
			if len(sealTestLeaks(before, secrets)) == 0 {
				t.Fatal("legacy store holds no plaintext secret: the test proves nothing")
			}
			etags := sealTestETags(t, legacy)

			s := store.New(b, nil, store.WithSealer(sealTestBox(t)))
			// Before the migration, legacy plaintext still reads.
			sealTestCheckReads(t, s, "n0-")

			var logs bytes.Buffer
			if err := s.SealSecrets(ctx, sealTestLogger(&logs), 3); err != nil {
				t.Fatal(err)
			}
			after := sealTestRaw(t, b)
			if leaks := sealTestLeaks(after, secrets); len(leaks) > 0 {
				t.Fatalf("plaintext left after the migration:\n%s", strings.Join(leaks, "\n"))
			}
			for i := range 7 {
				sealTestCheckReads(t, s, fmt.Sprintf("n%d-", i))
			}
			// The memory backend cannot keep ETags (no store.RawWriter).
			if got := sealTestETags(t, s); be.Name != "memory" && fmt.Sprint(got) != fmt.Sprint(etags) {
				t.Fatalf("ETags changed:\n%v\n%v", etags, got)
			}
			for _, want := range []string{`"bucket":"enrollments","scanned":7,"sealed":7`, `"bucket":"groups","scanned":7,"sealed":7`, `"bucket":"policies","scanned":7,"sealed":7`, `"sealed_documents":21`} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("logs lack %s:\n%s", want, logs.String())
				}
			}

			// Done once: the next start does not scan again.
			logs.Reset()
			if err := s.SealSecrets(ctx, sealTestLogger(&logs), 3); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(logs.String(), "sealed") {
				t.Fatalf("second run did work again:\n%s", logs.String())
			}
			if fmt.Sprint(sealTestRaw(t, b)) != fmt.Sprint(after) {
				t.Fatal("second run rewrote documents")
			}
		})
	}
}

func sealTestETags(t *testing.T, s *store.Store) []string {
	t.Helper()
	var out []string
	es, _, err := s.Enrollments.List(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		out = append(out, e.RegistrationID+"="+e.ETag+"@"+e.LastUpdatedDateTimeUTC.String())
	}
	ps, _, err := s.Policies.List(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		out = append(out, p.KeyName+"="+p.ETag+"@"+p.LastUpdatedDateTimeUTC.String())
	}
	return out
}

// Replicas starting together on one PostgreSQL store both run the
// migration: each batch is one serializable transaction, so they never
// seal a value twice over each other nor lose one, and both succeed.
func TestSealSecretsConcurrentReplicas(t *testing.T) {
	url, schema := pgtest.Schema(t)
	open := func() store.Backend {
		b, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	first := open()
	legacy := store.New(first, nil)
	var secrets []string
	for i := range 40 {
		secrets = append(secrets, sealTestDocs(t, legacy, fmt.Sprintf("r%02d-", i))...)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, b := range []store.Backend{first, open()} {
		wg.Go(func() {
			errs[i] = store.New(b, nil, store.WithSealer(sealTestBox(t))).SealSecrets(t.Context(), nil, 7)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if leaks := sealTestLeaks(sealTestRaw(t, first), secrets); len(leaks) > 0 {
		t.Fatalf("plaintext left:\n%s", strings.Join(leaks, "\n"))
	}
	s := store.New(first, nil, store.WithSealer(sealTestBox(t)))
	for i := range 40 {
		sealTestCheckReads(t, s, fmt.Sprintf("r%02d-", i))
	}
}

// The typed layer keeps every promise (ETags, timestamps, indexes, paging,
// multi-document transactions) with sealing on, on every backend.
func TestTypedConformanceSealed(t *testing.T) {
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			storetest.RunTyped(t, func(t *testing.T) store.Backend { return be.Open(t) }, store.WithSealer(sealTestBox(t)))
		})
	}
}
