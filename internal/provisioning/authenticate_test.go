package provisioning_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/internal/provisioning/caissuer"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
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
		{"enabled individual refuses the group key", "dev-1", "group:g1", port.ErrUnauthorized},
		{"wrong key", "dev-1", "wrong", port.ErrUnauthorized},
		{"no credential", "dev-1", "", port.ErrUnauthorized},
		{"attested another registration ID", "dev-1", "other-device", port.ErrUnauthorized},
		{"invalid registration ID", "bad id!", "individual", port.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.svc.Authenticate(ctx, &port.Request{RegistrationID: tc.regID, Authorization: tc.auth})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if n := count(t, e.st.Backend, store.BucketRegistrations) + count(t, e.st.Backend, provisioning.BucketOperations); n != 0 {
		t.Fatalf("Authenticate stored %d documents", n)
	}
}

// countingAttestor counts the attestations it makes.
type countingAttestor struct {
	fakeAttestor
	n *atomic.Int64
}

func (c countingAttestor) Attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	c.n.Add(1)
	return c.fakeAttestor.Attest(ctx, req)
}

// TestAuthenticateReuse: the first register after Authenticate with the
// same credentials, within the reuse window, is not attested again; any
// other request is, and a change to the enrollment since the CONNECT is
// still seen at persist.
func TestAuthenticateReuse(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		change      func(e *env, req *port.Request) // between Authenticate and Register
		wantAttests int64                           // by the register
		wantStatus  string
		wantErr     error
	}{
		{name: "same credentials", wantAttests: 0, wantStatus: enrollment.RegistrationAssigned},
		{name: "another key", change: func(_ *env, r *port.Request) { r.Authorization = "wrong" }, wantAttests: 1, wantErr: port.ErrUnauthorized},
		{name: "another registration ID", change: func(_ *env, r *port.Request) { r.RegistrationID = "dev-2" }, wantAttests: 1, wantErr: port.ErrUnauthorized},
		{name: "after the window", change: func(e *env, _ *port.Request) { e.advance(11 * time.Second) }, wantAttests: 1, wantStatus: enrollment.RegistrationAssigned},
		{name: "used once", change: func(e *env, r *port.Request) {
			if _, err := e.svc.Register(ctx, cloneReq(r)); err != nil {
				t.Fatal(err)
			}
		}, wantAttests: 1, wantStatus: enrollment.RegistrationAssigned},
		{name: "disabled since", change: func(e *env, _ *port.Request) {
			en, err := e.st.Enrollments.Get(ctx, "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			en.ProvisioningStatus = enrollment.StatusDisabled
			if _, err := e.st.Enrollments.Put(ctx, en, store.Condition{}); err != nil {
				t.Fatal(err)
			}
		}, wantAttests: 0, wantStatus: enrollment.RegistrationDisabled},
		{name: "deleted since", change: func(e *env, _ *port.Request) {
			if err := e.st.Enrollments.Delete(ctx, "dev-1", store.Condition{}); err != nil {
				t.Fatal(err)
			}
		}, wantAttests: 0, wantErr: port.ErrUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, memory.New(), nil)
			var n atomic.Int64
			iss, err := caissuer.New(e.ca)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := provisioning.New(provisioning.Config{Store: e.st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: countingAttestor{fakeAttestor{e.st}, &n}}, Allocator: hashed.New(), Issuer: iss, Logger: slog.New(slog.DiscardHandler), Now: e.clock})
			if err != nil {
				t.Fatal(err)
			}
			e.svc = svc
			e.hub(t, "a.example.net", 1, true)
			e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
			conn := &port.Request{RegistrationID: "dev-1", Authorization: "individual"}
			if err := svc.Authenticate(ctx, conn); err != nil {
				t.Fatal(err)
			}
			if conn.Attested == nil {
				t.Fatal("Authenticate set no Attested")
			}
			req := cloneReq(conn) // what a PUBLISH builds on
			if tc.change != nil {
				tc.change(e, req)
			}
			before := n.Load()
			op, err := svc.Register(ctx, req)
			if got := n.Load() - before; got != tc.wantAttests {
				t.Errorf("register attested %d times, want %d", got, tc.wantAttests)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if op.Status != tc.wantStatus {
				t.Fatalf("status %q, want %q", op.Status, tc.wantStatus)
			}
		})
	}
}

func cloneReq(r *port.Request) *port.Request { c := *r; return &c }
