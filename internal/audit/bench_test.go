package audit_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/memory"
)

func benchEvent(i int) audit.Event {
	return audit.Event{Action: audit.ActionRegistrationAssigned, Outcome: audit.OutcomeSuccess, Actor: "device",
		RegistrationID: fmt.Sprintf("dev-%08d", i), Resource: "registration/dev", ETagAfter: "0123456789abcdef", Source: "198.51.100.7:40000", Transport: "https",
		Details: map[string]string{"hub": "hub-1.example.net", "deviceId": "dev", "serial": "0123456789abcdef0123456789abcdef", "attestation": "symmetricKey", "group": "line-a", "operationId": "4.0123456789abcdef"}}
}

// BenchmarkRecord is the CPU a registration pays for its audit event:
// encoding it and one more key in the transaction the registration
// commits anyway (so no extra fsync). On the memory backend, so that the
// figure is the work itself, not a disk's sync.
func BenchmarkRecord(b *testing.B) {
	be := memory.New()
	l, _ := audit.New(audit.Config{Backend: be, Signer: audit.NewHMACSigner(make([]byte, 32))})
	b.ReportAllocs()
	i := 0
	if err := be.Update(b.Context(), func(tx store.Tx) error {
		for b.Loop() {
			i++
			if err := l.Record(b.Context(), tx, benchEvent(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSealPerEvent is the sealer's cost per event, in batches of
// 1,000 (one transaction, one fsync, one signature per batch).
func BenchmarkSealPerEvent(b *testing.B) {
	be, err := bolt.Open(filepath.Join(b.TempDir(), "zdps.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	l, _ := audit.New(audit.Config{Backend: be, Signer: audit.NewHMACSigner(make([]byte, 32))})
	const batch = 1000
	b.ReportAllocs()
	for n := 0; n < b.N; n += batch {
		b.StopTimer()
		if err := be.Update(b.Context(), func(tx store.Tx) error {
			for i := range batch {
				e := benchEvent(n + i)
				e.Time = time.Now()
				if err := l.Record(b.Context(), tx, e); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := l.Seal(b.Context(), time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
