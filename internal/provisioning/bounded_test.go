package provisioning_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/operations"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// issuedSerial is the lower-case hex serial of an operation's leaf.
func issuedSerial(t *testing.T, op *enrollment.Operation) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(op.IssuedCertificateChain[0])
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%032x", leaf.SerialNumber)
}

// boundedEnv is a service on backend be with one hub and the individual
// enrollment dev-1.
func boundedEnv(t *testing.T, be testbackend.Backend) *env {
	t.Helper()
	e := newEnv(t, be.Open(t), nil)
	e.hub(t, "a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1", DeviceID: "thing-1"})
	return e
}

// editRecord rewrites dev-1's record with fn applied.
func editRecord(t *testing.T, e *env, fn func(*enrollment.Registration)) {
	t.Helper()
	ctx := context.Background()
	err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
		r, err := e.st.Registrations.In(tx).Get(ctx, "dev-1")
		if err != nil {
			return err
		}
		fn(r)
		_, err = e.st.Registrations.In(tx).Put(ctx, r, store.Condition{IfMatch: r.ETag})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRenewableSerials: the record lists the newest unexpired serials, at
// most MaxRenewableCertificates, each with its NotAfter; expired ones go
// when the next certificate is issued, also for a record written before
// the record kept NotAfter; every certificate stays stored.
func TestRenewableSerials(t *testing.T) {
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			e := boundedEnv(t, be)
			register := func() string {
				t.Helper()
				op, err := e.svc.Register(ctx, devReq(t, ""))
				if err != nil {
					t.Fatal(err)
				}
				return issuedSerial(t, op)
			}
			record := func() *enrollment.Registration {
				t.Helper()
				r, err := e.st.Registrations.Get(ctx, "dev-1")
				if err != nil {
					t.Fatal(err)
				}
				return r
			}

			const n = provisioning.MaxRenewableCertificates + 4
			var issued []string
			for range n {
				issued = append(issued, register())
			}
			r := record()
			if want := issued[n-provisioning.MaxRenewableCertificates:]; !slices.Equal(r.CertificateSerials, want) {
				t.Fatalf("serials %q, want the newest %d %q", r.CertificateSerials, len(want), want)
			}
			for _, sn := range r.CertificateSerials {
				c, err := e.svc.Certificates().Get(ctx, sn)
				if err != nil || !r.CertificateExpiry[sn].Equal(c.NotAfter) {
					t.Fatalf("expiry of %s: record %v, certificate %+v %v", sn, r.CertificateExpiry[sn], c, err)
				}
			}
			if len(r.CertificateExpiry) != provisioning.MaxRenewableCertificates {
				t.Fatalf("%d expiry entries, want %d", len(r.CertificateExpiry), provisioning.MaxRenewableCertificates)
			}
			if got := count(t, e.st.Backend, revocation.BucketCertificates); got != n {
				t.Fatalf("%d certificates stored, want all %d", got, n)
			}

			// Some listed certificates expire (as the record says).
			expired := r.CertificateSerials[:5]
			editRecord(t, e, func(r *enrollment.Registration) {
				for _, sn := range expired {
					r.CertificateExpiry[sn] = e.clock().Add(-time.Second)
				}
			})
			next := register()
			want := append(slices.Clone(r.CertificateSerials[5:]), next)
			if got := record().CertificateSerials; !slices.Equal(got, want) {
				t.Fatalf("after expiry: serials %q, want %q", got, want)
			}

			// A record written before it kept NotAfter: each serial's
			// certificate is read; an expired one and one whose
			// certificate is gone are dropped.
			old := record().CertificateSerials
			editRecord(t, e, func(r *enrollment.Registration) {
				r.CertificateExpiry = nil
				r.CertificateSerials = append([]string{"00000000000000000000000000000bad"}, r.CertificateSerials...)
			})
			err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
				c, err := e.svc.Certificates().In(tx).Get(ctx, old[0])
				if err != nil {
					return err
				}
				c.NotAfter = e.clock()
				_, err = e.svc.Certificates().In(tx).Put(ctx, c, store.Condition{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			last := register()
			r = record()
			want = append(slices.Clone(old[1:]), last)
			if !slices.Equal(r.CertificateSerials, want) {
				t.Fatalf("legacy record: serials %q, want %q", r.CertificateSerials, want)
			}
			if len(r.CertificateExpiry) != len(want) || r.CertificateExpiry[last].IsZero() || r.CertificateExpiry[old[1]].IsZero() {
				t.Fatalf("legacy record: expiry %v", r.CertificateExpiry)
			}

			// A registration without a CSR keeps the list as it is.
			req := devReq(t, "")
			req.CSR = nil
			if _, err := e.svc.Register(ctx, req); err != nil {
				t.Fatal(err)
			}
			if got := record(); !slices.Equal(got.CertificateSerials, want) || len(got.CertificateExpiry) != len(want) {
				t.Fatalf("after a registration without CSR: serials %q", got.CertificateSerials)
			}
		})
	}
}

// TestOperationReplaced: a device's new final operation deletes its
// previous ones in the same transaction (a poll of one answers not
// found), whatever its outcome (assigned, disabled); an assigning
// operation of the device is kept, and other devices' are untouched.
func TestOperationReplaced(t *testing.T) {
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			e := boundedEnv(t, be)
			e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-2"})
			now := e.clock()
			// Another device's operation, and a background registration
			// of dev-1 still assigning.
			putOperations(t, e, []*enrollment.Operation{
				{OperationID: opID(1), RegistrationID: "dev-2", Status: enrollment.RegistrationAssigned, ExpiresAt: now.Add(time.Hour)},
				{OperationID: opID(2), RegistrationID: "dev-1", Status: enrollment.RegistrationAssigning, ExpiresAt: now.Add(time.Hour), Deadline: now.Add(time.Minute)},
			})

			req := devReq(t, `{"n":1}`)
			first, err := e.svc.Register(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			poll(t, e.svc, req, first.OperationID)
			second, err := e.svc.Register(ctx, devReq(t, `{"n":2}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.OperationStatus(ctx, req, first.OperationID); !errors.Is(err, port.ErrNotFound) {
				t.Fatalf("poll of the replaced operation: %v, want ErrNotFound", err)
			}
			if got := poll(t, e.svc, req, second.OperationID); got.Status != enrollment.RegistrationAssigned || got.OperationID != second.OperationID || len(got.Registration.Payload) != 0 {
				// No payload: without a webhook the device's own is never answered back.
				t.Fatalf("poll of the new operation: %+v", got)
			}
			want := []string{opID(1), opID(2), second.OperationID}
			slices.Sort(want)
			if got := keys(t, e.st.Backend, provisioning.BucketOperations); !slices.Equal(got, want) {
				t.Fatalf("operations %q, want %q", got, want)
			}

			// A refusal replaces it too.
			en, err := e.st.Enrollments.Get(ctx, "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			en.ProvisioningStatus = enrollment.StatusDisabled
			if _, err := e.st.Enrollments.Put(ctx, en, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			disabled, err := e.svc.Register(ctx, devReq(t, ""))
			if err != nil || disabled.Status != enrollment.RegistrationDisabled {
				t.Fatalf("disabled: %+v, %v", disabled, err)
			}
			want = []string{opID(1), opID(2), disabled.OperationID}
			slices.Sort(want)
			if got := keys(t, e.st.Backend, provisioning.BucketOperations); !slices.Equal(got, want) {
				t.Fatalf("after the disabled one: operations %q, want %q", got, want)
			}
			if got := keys(t, e.st.Backend, operations.BucketCurrent); !slices.Equal(got, []string{"dev-1"}) {
				t.Fatalf("current operations of %q, want dev-1's only (dev-2's was stored directly)", got)
			}

			// Pruning takes the index entries with the operations.
			if _, err := e.svc.PruneExpired(ctx, now.Add(2*time.Hour+provisioning.DefaultOperationTTL)); err != nil {
				t.Fatal(err)
			}
			for _, b := range []store.Bucket{provisioning.BucketOperations, operations.BucketCurrent, operations.IndexAssigning} {
				if n := count(t, e.st.Backend, b); n != 0 {
					t.Errorf("%d entries left in %s after pruning", n, b)
				}
			}
		})
	}
}

// BenchmarkReregister: one device registering again and again (no CSR, a
// 1 KB payload) on bbolt; each registration replaces the record and the
// device's previous operation.
func BenchmarkReregister(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b, openBolt(b), nil)
	e.hub(b, "a.example.net", 1, true)
	e.individual(b, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
	req := &port.Request{IDScope: "0ne00000001", RegistrationID: "dev-1", Authorization: "individual",
		Payload: []byte(`{"blob":"` + strings.Repeat("x", 1000) + `"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Register(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
