package manage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

func newService(t *testing.T) (*manage.Service, *store.Store, *revocation.Revocations) {
	t.Helper()
	st := store.New(memory.New(), nil)
	rev, err := revocation.NewRevocations(st, revocation.RevocationConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manage.New(manage.Config{Store: st, Revocations: rev})
	if err != nil {
		t.Fatal(err)
	}
	return m, st, rev
}

func symmetric(id string) *enrollment.IndividualEnrollment {
	return &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}}}
}

// TestPutKeys: keys are generated on create, kept when an update leaves
// them empty, and an If-Match on a missing document is a failed
// precondition, not a missing one.
func TestPutKeys(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newService(t)
	e := symmetric("dev-1")
	if created, err := manage.Put(ctx, m, manage.Enrollments, e, store.Condition{}); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	key := e.Attestation.SymmetricKey.PrimaryKey
	if key == "" {
		t.Fatal("no key generated")
	}
	again := symmetric("dev-1")
	if created, err := manage.Put(ctx, m, manage.Enrollments, again, store.Condition{}); err != nil || created {
		t.Fatalf("update: %v %v", created, err)
	}
	if got := again.Attestation.SymmetricKey.PrimaryKey; got != key {
		t.Fatalf("update without keys changed the key: %q, want %q", got, key)
	}
	_, err := manage.Put(ctx, m, manage.Enrollments, symmetric("dev-2"), store.Condition{IfMatch: "nope"})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("If-Match on a missing enrollment: %v, want a failed precondition", err)
	}
}

// TestDeleteAndDisableRevoke: deleting or disabling an enrollment revokes
// its registration's certificates before the use case returns, and leaves
// no revocation job behind; a group's records are swept likewise.
func TestDeleteAndDisableRevoke(t *testing.T) {
	tests := []struct {
		name   string
		group  string
		change func(context.Context, *manage.Service) error
	}{
		{name: "delete enrollment", change: func(ctx context.Context, m *manage.Service) error {
			return manage.Delete(ctx, m, manage.Enrollments, "dev-1", "")
		}},
		{name: "disable enrollment", change: func(ctx context.Context, m *manage.Service) error {
			e := symmetric("dev-1")
			e.ProvisioningStatus = enrollment.StatusDisabled
			_, err := manage.Put(ctx, m, manage.Enrollments, e, store.Condition{})
			return err
		}},
		{name: "disable group", group: "g1", change: func(ctx context.Context, m *manage.Service) error {
			g := &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1", Spec: enrollment.Spec{ProvisioningStatus: enrollment.StatusDisabled,
				Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}}}
			_, err := manage.Put(ctx, m, manage.Groups, g, store.Condition{})
			return err
		}},
		{name: "delete record", change: func(ctx context.Context, m *manage.Service) error {
			return m.DeleteRegistration(ctx, "dev-1", "")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m, st, rev := newService(t)
			if _, err := manage.Put(ctx, m, manage.Enrollments, symmetric("dev-1"), store.Condition{}); err != nil {
				t.Fatal(err)
			}
			certs := revocation.Certificates(st.Backend, nil)
			err := st.Backend.Update(ctx, func(tx store.Tx) error {
				rec := &enrollment.Registration{RegistrationID: "dev-1", Status: enrollment.RegistrationAssigned, AssignedHub: "hub", EnrollmentGroupID: tc.group}
				if _, err := st.Registrations.In(tx).Put(ctx, rec, store.Condition{}); err != nil {
					return err
				}
				_, err := certs.In(tx).Put(ctx, &enrollment.Certificate{Serial: "0a", RegistrationID: "dev-1", NotAfter: time.Now().Add(time.Hour)}, store.Condition{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.change(ctx, m); err != nil {
				t.Fatal(err)
			}
			if ok, err := rev.IsRevoked(ctx, "0a"); err != nil || !ok {
				t.Fatalf("revoked = %v, %v; want revoked when the change returns", ok, err)
			}
			if done, err := rev.SweepPending(ctx, 1); err != nil || !done {
				t.Fatalf("a revocation job was left: done=%v err=%v", done, err)
			}
		})
	}
}

// TestOwnerPolicy: the owner policy keeps ServiceConfig and cannot be
// deleted.
func TestOwnerPolicy(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newService(t)
	var verr *enrollment.ValidationError
	_, err := m.PutPolicy(ctx, &enrollment.SharedAccessPolicy{KeyName: enrollment.OwnerPolicyName, Rights: enrollment.RightEnrollmentRead}, store.Condition{})
	if !errors.As(err, &verr) || verr.Field != "rights" {
		t.Fatalf("owner without ServiceConfig: %v", err)
	}
	if err := m.DeletePolicy(ctx, "ProvisioningServiceOwner", ""); !errors.As(err, &verr) || verr.Field != "keyName" {
		t.Fatalf("delete owner: %v", err)
	}
}

// TestBulkItems: a bad item fails alone, with its own error.
func TestBulkItems(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newService(t)
	if _, err := manage.Put(ctx, m, manage.Enrollments, symmetric("dev-1"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	res := manage.Bulk(ctx, m, manage.Enrollments, enrollment.BulkCreate, []*enrollment.IndividualEnrollment{symmetric("dev-1"), symmetric("dev-2")})
	if len(res) != 2 || !errors.Is(res[0].Err, store.ErrConflict) || res[1].Err != nil {
		t.Fatalf("results %+v: want dev-1 conflict, dev-2 written", res)
	}
	if _, err := manage.Get(ctx, m, manage.Enrollments, "dev-2"); err != nil {
		t.Fatal(err)
	}
}
