package symkey_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/attestation/symmetric"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/symkey"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

const scope = "0ne00000001"

var devKey = bytes.Repeat([]byte{1}, 32)

func seed(t testing.TB, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	k := base64.StdEncoding.EncodeToString(devKey)
	sym := &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: k, SecondaryKey: k}}
	if _, err := st.Enrollments.Put(ctx, &enrollment.IndividualEnrollment{RegistrationID: "dev-1", Spec: enrollment.Spec{Attestation: sym}}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Groups.Put(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1", Spec: enrollment.Spec{Attestation: sym}}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	x := &enrollment.AttestationMechanism{Type: enrollment.AttestationX509}
	if _, err := st.Groups.Put(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g0-x509", Spec: enrollment.Spec{Attestation: x}}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Hubs.Put(ctx, &enrollment.Hub{Name: "hub-a.example.net"}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func TestAttest(t *testing.T) {
	st := store.New(memory.New(), nil)
	seed(t, st)
	a, err := symkey.NewAttestor(st, symmetric.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	tests := []struct {
		name      string
		regID     string
		auth      string
		wantErr   []error
		wantGroup string
	}{
		{name: "individual", regID: "dev-1", auth: sas.Build(devKey, scope+"/registrations/dev-1", "registration", hour)},
		{name: "group", regID: "dev-9", auth: sas.Build(sas.DeriveDeviceKey(devKey, "dev-9"), scope+"/registrations/dev-9", "registration", hour), wantGroup: "g1"},
		{name: "bad signature", regID: "dev-1", auth: sas.Build([]byte("nope"), scope+"/registrations/dev-1", "registration", hour), wantErr: []error{port.ErrUnauthorized, symmetric.ErrUnauthorized}},
		{name: "expired", regID: "dev-1", auth: sas.Build(devKey, scope+"/registrations/dev-1", "registration", time.Now().Add(-time.Hour)), wantErr: []error{port.ErrUnauthorized, symmetric.ErrExpired}},
		{name: "malformed", regID: "dev-1", auth: "Basic Zm9vOmJhcg==", wantErr: []error{port.ErrUnauthorized, symmetric.ErrMalformed}},
		{name: "other scope", regID: "dev-1", auth: sas.Build(devKey, "0neOTHER/registrations/dev-1", "registration", hour), wantErr: []error{port.ErrUnauthorized}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Attest(context.Background(), &port.Request{IDScope: scope, RegistrationID: tc.regID, Authorization: tc.auth})
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
			if len(tc.wantErr) > 0 {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gid := ""
			if id.Group != nil {
				gid = id.Group.EnrollmentGroupID
			}
			if id.Type != enrollment.AttestationSymmetricKey || id.RegistrationID != tc.regID || gid != tc.wantGroup || (gid == "") != (id.Enrollment != nil) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

// brokenLookup fails like a store that is down.
type brokenLookup struct{}

var errDown = errors.New("store down")

func (brokenLookup) IndividualEnrollment(context.Context, string) (*enrollment.IndividualEnrollment, error) {
	return nil, errDown
}
func (brokenLookup) SymmetricKeyGroups(context.Context) ([]*enrollment.EnrollmentGroup, error) {
	return nil, errDown
}

func TestLookupFailureIsAServerFault(t *testing.T) {
	a, err := symkey.NewAttestor(nil, symmetric.Config{Lookup: brokenLookup{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Attest(context.Background(), &port.Request{IDScope: scope, RegistrationID: "dev-1", Authorization: sas.Build(devKey, scope+"/registrations/dev-1", "registration", time.Now().Add(time.Hour))})
	if !errors.Is(err, errDown) || errors.Is(err, port.ErrUnauthorized) {
		t.Fatalf("err = %v: a store failure must stay a server fault", err)
	}
}

func TestLookupGroupsOnlySymmetric(t *testing.T) {
	st := store.New(memory.New(), nil)
	seed(t, st)
	gs, err := symkey.NewLookup(st).SymmetricKeyGroups(context.Background())
	if err != nil || len(gs) != 1 || gs[0].EnrollmentGroupID != "g1" {
		t.Fatalf("%v %v", gs, err)
	}
	e, err := symkey.NewLookup(st).IndividualEnrollment(context.Background(), "nobody")
	if e != nil || err != nil {
		t.Fatalf("not found must be nil, nil: %v %v", e, err)
	}
}

// BenchmarkRegisterSymmetric runs the whole pipeline (real SAS verification,
// hashed allocation over 50 hubs, bbolt persistence with fsync) for
// distinct devices of a group, serially and in parallel.
func BenchmarkRegisterSymmetric(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			be, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			st := store.New(be, nil)
			seed(b, st)
			for i := range 50 {
				if _, err := st.Hubs.Put(ctx, &enrollment.Hub{Name: fmt.Sprintf("hub-%02d.example.net", i), AllocationWeight: 1 + i%5}, store.Condition{}); err != nil {
					b.Fatal(err)
				}
			}
			att, err := symkey.NewAttestor(st, symmetric.Config{})
			if err != nil {
				b.Fatal(err)
			}
			svc, err := provisioning.New(provisioning.Config{Store: st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: att}, Allocator: hashed.New(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			hour := time.Now().Add(time.Hour)
			req := func(i int) *port.Request {
				id := fmt.Sprintf("bench-%s-%d", mode, i)
				return &port.Request{IDScope: scope, RegistrationID: id, Authorization: sas.Build(sas.DeriveDeviceKey(devKey, id), scope+"/registrations/"+id, "registration", hour)}
			}
			b.ReportAllocs()
			if mode == "serial" {
				i := 0
				for b.Loop() {
					i++
					if _, err := svc.Register(ctx, req(i)); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			var next atomicCounter
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := svc.Register(ctx, req(next.add())); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
