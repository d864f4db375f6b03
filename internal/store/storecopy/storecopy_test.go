package storecopy_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/storecopy"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// fill writes n enrollments through the typed layer (documents and their
// index entries) and some raw keys with awkward bytes.
func fill(t *testing.T, b store.Backend, n int) {
	t.Helper()
	ctx := t.Context()
	s := store.New(b, nil)
	for i := range n {
		e := &enrollment.IndividualEnrollment{
			RegistrationID: fmt.Sprintf("dev-%05d", i), Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
				Type:         enrollment.AttestationSymmetricKey,
				SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0"},
			},
				ProvisioningStatus: enrollment.StatusEnabled},
		}
		if _, err := s.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Update(ctx, func(tx store.Tx) error {
		for _, k := range []string{"a\x01b", "é", "\xff\xfe", "z"} {
			if _, err := tx.Put(ctx, "raw", k, []byte{0, 1, 2, 0xff}, store.Condition{}); err != nil {
				return err
			}
		}
		_, err := tx.Put(ctx, "empty-value", "k", nil, store.Condition{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := t.Context()
	src, mid, back := testbackend.Bolt(t), testbackend.Postgres(t), testbackend.Bolt(t)
	fill(t, src, 2500) // several batches
	for _, step := range []struct {
		name     string
		dst, src store.Backend
	}{
		{"bolt to postgres", mid, src},
		{"postgres to bolt", back, mid},
	} {
		t.Run(step.name, func(t *testing.T) {
			progress := 0
			n, err := storecopy.Copy(ctx, step.dst, step.src, storecopy.Config{BatchSize: 700, Progress: func(_ store.Bucket, k int) { progress += k }})
			if err != nil {
				t.Fatal(err)
			}
			if n != progress || n < 2500 {
				t.Fatalf("copied %d, progress reported %d", n, progress)
			}
			want, err := storecopy.Summarize(ctx, step.src, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := storecopy.Summarize(ctx, step.dst, 333)
			if err != nil {
				t.Fatal(err)
			}
			cmp, err := storecopy.Compare(want, got)
			if err != nil {
				t.Fatalf("%v\n%+v", err, cmp)
			}
			if len(cmp) != len(want) {
				t.Fatalf("%d buckets compared, source has %d", len(cmp), len(want))
			}
		})
	}
	// ETags survive, so a client's If-Match from before the migration
	// still applies afterwards.
	s1, s2 := store.New(src, nil), store.New(back, nil)
	e1, err := s1.Enrollments.Get(ctx, "dev-00042")
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s2.Enrollments.Get(ctx, "dev-00042")
	if err != nil {
		t.Fatal(err)
	}
	if e1.ETag == "" || e1.ETag != e2.ETag {
		t.Fatalf("ETag %q became %q", e1.ETag, e2.ETag)
	}
	if _, err := s2.Enrollments.Put(ctx, e2, store.Condition{IfMatch: e1.ETag}); err != nil {
		t.Fatalf("If-Match with the pre-migration ETag: %v", err)
	}
}

func TestRefusesNonEmptyDestination(t *testing.T) {
	for _, tc := range []testbackend.Backend{{Name: "bolt", Open: testbackend.Bolt}, {Name: "postgres", Open: testbackend.Postgres}} {
		t.Run(tc.Name, func(t *testing.T) {
			src, dst := testbackend.Bolt(t), tc.Open(t)
			fill(t, src, 3)
			fill(t, dst, 1)
			if _, err := storecopy.Copy(t.Context(), dst, src, storecopy.Config{}); !errors.Is(err, storecopy.ErrNotEmpty) {
				t.Fatalf("Copy = %v, want ErrNotEmpty", err)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	d := func(b byte) [32]byte { return [32]byte{b} }
	for _, tc := range []struct {
		name     string
		src, dst []storecopy.BucketSummary
		bad      bool
	}{
		{"same", []storecopy.BucketSummary{{"a", 2, d(1)}, {"b", 1, d(2)}}, []storecopy.BucketSummary{{"a", 2, d(1)}, {"b", 1, d(2)}}, false},
		{"both empty", nil, nil, false},
		{"count differs", []storecopy.BucketSummary{{"a", 2, d(1)}}, []storecopy.BucketSummary{{"a", 1, d(1)}}, true},
		{"content differs", []storecopy.BucketSummary{{"a", 2, d(1)}}, []storecopy.BucketSummary{{"a", 2, d(9)}}, true},
		{"missing in destination", []storecopy.BucketSummary{{"a", 2, d(1)}, {"b", 1, d(2)}}, []storecopy.BucketSummary{{"a", 2, d(1)}}, true},
		{"extra in destination", []storecopy.BucketSummary{{"a", 2, d(1)}}, []storecopy.BucketSummary{{"a", 2, d(1)}, {"x", 1, d(2)}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storecopy.Compare(tc.src, tc.dst)
			if tc.bad != errors.Is(err, storecopy.ErrMismatch) || (!tc.bad && err != nil) {
				t.Fatalf("Compare = %v, want mismatch %v", err, tc.bad)
			}
		})
	}
}
