package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/console"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Sizes of the benchmark's store.
const (
	benchEnrollments   = 100_000
	benchRegistrations = 100_000
	benchGroups        = 100
	benchHubs          = 10
	// benchEvents fill the trail's newest window that the dashboard's
	// chart reads (its worst case: every event a registration of the last
	// hours).
	benchEvents = 20_000
	seedBatch   = 2000
)

// seed fills the store directly through its collections (the use cases
// would make each document its own transaction: minutes for 200,000).
func seed(b *testing.B, e *env) {
	ctx := context.Background()
	st := e.st
	put := func(n int, fn func(tx store.Tx, i int) error) {
		for start := 0; start < n; start += seedBatch {
			if err := st.Backend.Update(ctx, func(tx store.Tx) error {
				for i := start; i < min(start+seedBatch, n); i++ {
					if err := fn(tx, i); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	hub := func(i int) string { return fmt.Sprintf("hub-%02d.example.com", i%benchHubs) }
	put(benchHubs, func(tx store.Tx, i int) error {
		_, err := st.Hubs.In(tx).Put(ctx, &enrollment.Hub{Name: hub(i), AllocationWeight: 1}, store.Condition{})
		return err
	})
	sym := func() *enrollment.AttestationMechanism {
		return &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{
			PrimaryKey: "cHJpbWFyeS1rZXktcHJpbWFyeS1rZXktcHJpbWFyeS0=", SecondaryKey: "c2Vjb25kYXJ5LWtleS1zZWNvbmRhcnkta2V5LXNlY28="}}
	}
	put(benchGroups, func(tx store.Tx, i int) error {
		_, err := st.Groups.In(tx).Put(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: fmt.Sprintf("group-%03d", i), Spec: enrollment.Spec{Attestation: sym()}}, store.Condition{})
		return err
	})
	put(benchEnrollments, func(tx store.Tx, i int) error {
		id := fmt.Sprintf("device-%06d", i)
		_, err := st.Enrollments.In(tx).Put(ctx, &enrollment.IndividualEnrollment{RegistrationID: id, DeviceID: id,
			Spec: enrollment.Spec{Attestation: sym(), IoTHubHostName: hub(i)}}, store.Condition{})
		return err
	})
	exp := time.Now().Add(365 * 24 * time.Hour).UTC()
	put(benchRegistrations, func(tx store.Tx, i int) error {
		id := fmt.Sprintf("device-%06d", i)
		serial := fmt.Sprintf("%032x", i)
		_, err := st.Registrations.In(tx).Put(ctx, &enrollment.Registration{RegistrationID: id, DeviceID: id, AssignedHub: hub(i),
			Status: enrollment.RegistrationAssigned, AttestationType: enrollment.AttestationSymmetricKey, EnrollmentGroupID: fmt.Sprintf("group-%03d", i%benchGroups),
			CertificateSerials: []string{serial}, CertificateExpiry: map[string]time.Time{serial: exp}}, store.Condition{})
		return err
	})
	now := time.Now()
	put(benchEvents, func(tx store.Tx, i int) error {
		return e.trail.Log.Record(ctx, tx, audit.Event{Time: now.Add(-time.Duration(benchEvents-i) * 500 * time.Millisecond), Action: audit.ActionRegistrationAssigned,
			Outcome: audit.OutcomeSuccess, Actor: "device", RegistrationID: fmt.Sprintf("device-%06d", i),
			Details: map[string]string{"attestation": enrollment.AttestationSymmetricKey, "hub": hub(i)}})
	})
	for {
		n, err := e.trail.Log.Seal(ctx, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
}

// BenchmarkPages measures each page of the console, signed in with every
// right, over a store of 100,000 enrollments and 100,000 registration
// records: a GET over TLS (one kept-alive connection), rendered in full.
// go test -run '^$' -bench BenchmarkPages -benchtime 200x ./internal/console/
func BenchmarkPages(b *testing.B) {
	e := newEnvOn(b, testbackend.Bolt(b), console.Config{})
	start := time.Now()
	seed(b, e)
	b.Logf("seeded %d enrollments, %d registration records, %d audit events in %v", benchEnrollments, benchRegistrations, benchEvents, time.Since(start).Round(time.Second))
	// What zdps serve runs at start: the chart's first read of the trail
	// (20,000 events), every hub's device count, the posture report.
	t0 := time.Now()
	if err := e.cons.Warm(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Logf("Warm (chart and hub counts; posture in the background): %v", time.Since(t0).Round(100*time.Microsecond))
	br := e.signIn(ownerPolicy)
	// The dashboard's posture report is computed in the background; the
	// benchmark measures the page once it is there.
	for deadline := time.Now().Add(5 * time.Minute); ; {
		_, page := br.get("/console")
		if !shows(page, "Computing the posture report") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the posture report took over 5 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A continuation token from the middle of the enrollments.
	_, mid, err := e.uc.Enrollments.List(context.Background(), "", 50_000)
	if err != nil || mid == "" {
		b.Fatal("no continuation", err)
	}
	for _, p := range []string{
		"/console",
		"/console/enrollments",
		"/console/enrollments?after=" + mid,
		"/console/enrollments/device-054321",
		"/console/enrollments?q=device-099999",
		"/console/groups",
		"/console/groups/group-042",
		"/console/registrations",
		"/console/registrations?by=hub&q=hub-03.example.com",
		"/console/registrations?by=device&q=device-004321",
		"/console/registrations?by=group&q=group-042",
		"/console/registrations/device-077777",
		"/console/hubs",
		"/console/ca",
		"/console/audit",
		"/console/audit?action=registration.refused",
		"/console/alerts",
	} {
		b.Run(p, func(b *testing.B) {
			for b.Loop() {
				resp, err := br.c.Get(e.url(p))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther {
					b.Fatalf("GET %s: %d", p, resp.StatusCode)
				}
			}
		})
	}
}
