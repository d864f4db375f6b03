package provisioning_test

import (
	"context"
	"errors"
	"testing"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestAuthenticate: the CONNECT-time check runs attestation and
// resolution only: the same refusals as Register, nothing stored.
func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, memory.New(), nil)
	e.hub(t, "a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
	e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1"})
	tests := []struct {
		name, regID, auth string
		want              error
	}{
		{"individual", "dev-1", "individual", nil},
		{"group", "dev-2", "group:g1", nil},
		{"enabled individual refuses the group key", "dev-1", "group:g1", provisioning.ErrUnauthorized},
		{"wrong key", "dev-1", "wrong", provisioning.ErrUnauthorized},
		{"no credential", "dev-1", "", provisioning.ErrUnauthorized},
		{"attested another registration ID", "dev-1", "other-device", provisioning.ErrUnauthorized},
		{"invalid registration ID", "bad id!", "individual", provisioning.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.svc.Authenticate(ctx, &provisioning.Request{RegistrationID: tc.regID, Authorization: tc.auth})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if n := count(t, e.st.Backend, store.BucketRegistrations) + count(t, e.st.Backend, provisioning.BucketOperations); n != 0 {
		t.Fatalf("Authenticate stored %d documents", n)
	}
}
