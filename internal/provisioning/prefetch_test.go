package provisioning_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/symkey"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestPrefetchedEnrollment: the read of the individual enrollment that
// picks the mechanism is handed to the symmetric-key lookup, which then
// does not read it again; for another registration ID it reads the store.
func TestPrefetchedEnrollment(t *testing.T) {
	ctx := context.Background()
	st := store.New(memory.New(), nil)
	if _, err := st.Enrollments.Put(ctx, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	svc, err := provisioning.New(provisioning.Config{Store: st, Allocator: hashed.New(), Logger: slog.New(slog.DiscardHandler),
		Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{st}, enrollment.AttestationTPM: fakeAttestor{st}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		regID, lookup string
		wantFound     bool
		wantEnrolled  bool
	}{
		{"dev-1", "DEV-1", true, true},
		{"dev-2", "dev-2", true, false}, // read absent: the lookup answers nil without reading
		{"dev-1", "dev-3", false, false},
	} {
		t.Run(tc.regID+"/"+tc.lookup, func(t *testing.T) {
			mech, mctx := svc.Mechanism(ctx, &port.Request{RegistrationID: tc.regID, Authorization: "SharedAccessSignature sr=x"})
			if mech != enrollment.AttestationSymmetricKey {
				t.Fatalf("mechanism %q", mech)
			}
			e, found := port.PrefetchedEnrollment(mctx, tc.lookup)
			if found != tc.wantFound || (e != nil) != tc.wantEnrolled {
				t.Fatalf("prefetched %v, %v; want found %v, enrolled %v", e, found, tc.wantFound, tc.wantEnrolled)
			}
			// The lookup answers what was prefetched for that ID.
			got, err := symkey.NewLookup(st).IndividualEnrollment(mctx, tc.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantFound && (got != nil) != tc.wantEnrolled {
				t.Fatalf("lookup %v", got)
			}
		})
	}
}
