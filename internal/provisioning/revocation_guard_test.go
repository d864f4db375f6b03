package provisioning_test

import (
	"context"
	"crypto/elliptic"
	"errors"
	"testing"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestRegisterRacesTheChange changes the enrollment, its group or the
// revocation jobs while a registration is between resolve and persist
// (held in allocation): persist sees the change and stores no certificate.
func TestRegisterRacesTheChange(t *testing.T) {
	disable := func(ctx context.Context, e *env, individual bool) error {
		if individual {
			en, err := e.st.Enrollments.Get(ctx, "dev-1")
			if err != nil {
				return err
			}
			en.ProvisioningStatus = enrollment.StatusDisabled
			_, err = e.st.Enrollments.Put(ctx, en, store.Condition{})
			return err
		}
		g, err := e.st.Groups.Get(ctx, "g1")
		if err != nil {
			return err
		}
		g.ProvisioningStatus = enrollment.StatusDisabled
		_, err = e.st.Groups.Put(ctx, g, store.Condition{})
		return err
	}
	job := func(ctx context.Context, e *env, group bool) error {
		rev, err := revocation.NewRevocations(e.st, revocation.RevocationConfig{Now: e.clock})
		if err != nil {
			return err
		}
		return e.st.Backend.Update(ctx, func(tx store.Tx) error {
			if group {
				_, err = rev.StartGroupSweepTx(ctx, tx, "G1", revocation.ReasonPrivilegeWithdrawn)
			} else {
				_, err = rev.StartRegistrationRevocationTx(ctx, tx, "DEV-1", revocation.ReasonPrivilegeWithdrawn)
			}
			return err
		})
	}
	tests := []struct {
		name       string
		auth       string
		change     func(context.Context, *env) error
		wantErr    error
		wantStatus string
	}{
		{name: "no change", auth: "individual", change: func(context.Context, *env) error { return nil }, wantStatus: enrollment.RegistrationAssigned},
		{name: "enrollment deleted", auth: "individual", change: func(ctx context.Context, e *env) error {
			return e.st.Enrollments.Delete(ctx, "dev-1", store.Condition{})
		}, wantErr: port.ErrUnauthorized},
		{name: "enrollment disabled", auth: "individual", change: func(ctx context.Context, e *env) error { return disable(ctx, e, true) }, wantStatus: enrollment.RegistrationDisabled},
		{name: "registration revocation pending", auth: "individual", change: func(ctx context.Context, e *env) error { return job(ctx, e, false) }, wantErr: port.ErrThrottled},
		{name: "group deleted", auth: "group:g1", change: func(ctx context.Context, e *env) error {
			return e.st.Groups.Delete(ctx, "g1", store.Condition{})
		}, wantErr: port.ErrUnauthorized},
		{name: "group disabled", auth: "group:g1", change: func(ctx context.Context, e *env) error { return disable(ctx, e, false) }, wantStatus: enrollment.RegistrationDisabled},
		{name: "group sweep pending", auth: "group:g1", change: func(ctx context.Context, e *env) error { return job(ctx, e, true) }, wantErr: port.ErrThrottled},
		{name: "group registration revocation pending", auth: "group:g1", change: func(ctx context.Context, e *env) error { return job(ctx, e, false) }, wantErr: port.ErrThrottled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := asyncEnv(t, "bolt")
			e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1"})
			if tc.auth != "individual" {
				if err := e.st.Enrollments.Delete(ctx, "dev-1", store.Condition{}); err != nil {
					t.Fatal(err)
				}
			}
			gate := newGate()
			iss, err := caissuer.New(e.ca)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := provisioning.New(provisioning.Config{
				Store:     e.st,
				Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}},
				Allocator: gate, Issuer: iss, Logger: testLogger(t), Now: e.clock,
			})
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				op  *enrollment.Operation
				err error
			}
			done := make(chan result, 1)
			go func() {
				op, err := svc.Register(ctx, &port.Request{IDScope: "0ne00000001", RegistrationID: "dev-1", Authorization: tc.auth, CSR: csrFor(t, "dev-1", elliptic.P256())})
				done <- result{op, err}
			}()
			<-gate.entered // resolved, holding in allocation
			if err := tc.change(ctx, e); err != nil {
				t.Fatal(err)
			}
			gate.open()
			r := <-done
			if !errors.Is(r.err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", r.err, tc.wantErr)
			}
			certs := count(t, e.st.Backend, revocation.BucketCertificates)
			if tc.wantStatus == enrollment.RegistrationAssigned {
				if r.op.Status != tc.wantStatus || certs != 1 {
					t.Fatalf("status %q with %d certificates stored, want assigned with 1", r.op.Status, certs)
				}
				return
			}
			if r.err == nil && r.op.Status != tc.wantStatus {
				t.Fatalf("status %q, want %q", r.op.Status, tc.wantStatus)
			}
			if n := count(t, e.st.Backend, store.BucketRegistrations); certs != 0 || n != 0 {
				t.Fatalf("%d certificates and %d records stored after the change", certs, n)
			}
		})
	}
}
