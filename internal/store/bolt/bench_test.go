package bolt_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Benchmarks of the durable store (every commit is fsynced). Run with
//
//	go test -run '^$' -bench . -benchtime 3s ./internal/store/bolt
//
// ops/s is the figure to compare; ns/op of parallel benchmarks is wall time
// divided by operations across all goroutines.

func reportOps(b *testing.B, perOp int) {
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "ops/s")
}

func benchEnrollment(id string) *enrollment.IndividualEnrollment {
	return &enrollment.IndividualEnrollment{
		RegistrationID: id,
		DeviceID:       id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
			Type: enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{
				PrimaryKey:   "bXktcHJpbWFyeS1rZXktb2YtNjQtYnl0ZXMtYmFzZTY0LWVuY29kZWQtZm9yLWEtYmVuY2htYXJrLTAxMjM0NTY3OA==",
				SecondaryKey: "bXktc2Vjb25kYXJ5LWtleS1vZi02NC1ieXRlcy1iYXNlNjQtZW5jb2RlZC1mb3ItYS1iZW5jaG1hcmstMDEyMzQ1Njc=",
			},
		},
			IoTHubHostName:     "hub-1.azure-devices.net",
			ProvisioningStatus: enrollment.StatusEnabled,
			AllocationPolicy:   enrollment.PolicyHashed},
	}
}

func benchValue(b *testing.B) []byte {
	v, err := json.Marshal(benchEnrollment("device-000000"))
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkGet: point reads of random keys among 100,000, from all CPUs.
func BenchmarkGet(b *testing.B) {
	db := openTest(b, bolt.Options{})
	ctx := b.Context()
	const n = 100_000
	val := benchValue(b)
	for start := 0; start < n; start += 10_000 { // import in moderate transactions
		err := db.Update(ctx, func(tx store.Tx) error {
			for i := start; i < start+10_000; i++ {
				if _, err := tx.Put(ctx, "enrollments", fmt.Sprintf("device-%06d", i), val, store.Condition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("device-%06d", rand.IntN(n))
			err := db.View(ctx, func(tx store.Tx) error {
				_, err := tx.Get(ctx, "enrollments", key)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOps(b, 1)
}

// BenchmarkPutSerial: one writer, one durable commit per write.
func BenchmarkPutSerial(b *testing.B) {
	db := openTest(b, bolt.Options{})
	ctx := b.Context()
	val := benchValue(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		err := db.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, "enrollments", fmt.Sprintf("device-%09d", i), val, store.Condition{})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b, 1)
}

// BenchmarkPutParallel: single-document durable writes from many goroutines
// (64 per CPU, like concurrent API requests), grouped into shared commits
// by Batch, with the default batch delay, bbolt's own default (10ms) and 1ms.
func BenchmarkPutParallel(b *testing.B) {
	for _, delay := range []time.Duration{0, 10 * time.Millisecond, time.Millisecond} {
		name := "delay=default"
		if delay > 0 {
			name = "delay=" + delay.String()
		}
		b.Run(name, func(b *testing.B) {
			db := openTest(b, bolt.Options{MaxBatchDelay: delay})
			ctx := b.Context()
			val := benchValue(b)
			var seq atomic.Int64
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("device-%09d", seq.Add(1))
					err := db.Update(ctx, func(tx store.Tx) error {
						_, err := tx.Put(ctx, "enrollments", key, val, store.Condition{IfNoneMatch: true})
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportOps(b, 1)
		})
	}
}

// BenchmarkBulkPut1000: 1,000 enrollments through the typed layer in one
// Update, as one bulk API call does. ops/s counts enrollments.
func BenchmarkBulkPut1000(b *testing.B) {
	db := openTest(b, bolt.Options{})
	s := store.New(db, nil)
	ctx := b.Context()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		err := db.Update(ctx, func(tx store.Tx) error {
			in := s.Enrollments.In(tx)
			for j := range 1000 {
				if _, err := in.Put(ctx, benchEnrollment(fmt.Sprintf("device-%06d-%04d", i, j)), store.Condition{IfNoneMatch: true}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b, 1000)
}

// BenchmarkCollectionPut: the typed layer's Put of one enrollment (read,
// JSON encode, conditional write, durable commit), serial and from many
// goroutines.
func BenchmarkCollectionPut(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		s := store.New(openTest(b, bolt.Options{}), nil)
		ctx := b.Context()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Enrollments.Put(ctx, benchEnrollment(fmt.Sprintf("device-%09d", i)), store.Condition{IfNoneMatch: true}); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b, 1)
	})
	b.Run("parallel", func(b *testing.B) {
		s := store.New(openTest(b, bolt.Options{}), nil)
		ctx := b.Context()
		var seq atomic.Int64
		b.SetParallelism(64)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e := benchEnrollment(fmt.Sprintf("device-%09d", seq.Add(1)))
				if _, err := s.Enrollments.Put(ctx, e, store.Condition{IfNoneMatch: true}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportOps(b, 1)
	})
}
