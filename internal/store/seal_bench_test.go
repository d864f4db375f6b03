package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// What sealing adds to the reads of a symmetric-key registration: the
// individual enrollment (Get, two keys opened) or the symmetric-key groups
// (List, two keys opened per group), and to an enrollment write (Put: the
// old document opened, the new one sealed). The memory backend keeps I/O
// out of the figure; compare "sealed" with "plain":
//
//	go test -run '^$' -bench Sealing -benchtime 20000x ./internal/store
func BenchmarkSealing(b *testing.B) {
	for _, mode := range []string{"plain", "sealed"} {
		var opts []store.Option
		if mode == "sealed" {
			opts = append(opts, store.WithSealer(sealTestBox(b)))
		}
		s := store.New(memory.New(), nil, opts...)
		ctx := context.Background()
		e := &enrollment.IndividualEnrollment{RegistrationID: "dev-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
			Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: sealTestKey(1), SecondaryKey: sealTestKey(2)}}}}
		if _, err := s.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
			b.Fatal(err)
		}
		for i := range 10 {
			g := &enrollment.EnrollmentGroup{EnrollmentGroupID: fmt.Sprintf("group-%02d", i), Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
				Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: sealTestKey(3), SecondaryKey: sealTestKey(4)}}}}
			if _, err := s.Groups.Put(ctx, g, store.Condition{}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("enrollment-get/"+mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Enrollments.Get(ctx, "dev-1"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("groups-list-10/"+mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if gs, _, err := s.Groups.List(ctx, "", 1000); err != nil || len(gs) != 10 {
					b.Fatal(len(gs), err)
				}
			}
		})
		b.Run("enrollment-put/"+mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The startup migration on a bbolt file: records sealed per second, in the
// default batches of 100 (each one fsynced transaction).
//
//	go test -run '^$' -bench SealSecretsMigration -benchtime 3x ./internal/store
func BenchmarkSealSecretsMigration(b *testing.B) {
	const n = 5000
	for b.Loop() {
		b.StopTimer()
		be := testbackend.Bolt(b)
		legacy := store.New(be, nil)
		err := be.Update(context.Background(), func(tx store.Tx) error {
			for i := range n {
				e := &enrollment.IndividualEnrollment{RegistrationID: fmt.Sprintf("dev-%05d", i), Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
					Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: sealTestKey(1), SecondaryKey: sealTestKey(2)}}}}
				if _, err := legacy.Enrollments.In(tx).Put(context.Background(), e, store.Condition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		s := store.New(be, nil, store.WithSealer(sealTestBox(b)))
		b.StartTimer()
		if err := s.SealSecrets(context.Background(), nil, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
