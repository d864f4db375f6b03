package provisioning_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// fakeAttestor proves whatever the Authorization header names, reading the
// enrollment or group from the store as a real verifier does:
// "individual", "group:<id>", anything else is refused.
type fakeAttestor struct{ st *store.Store }

func (f fakeAttestor) Attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	id := &port.Identity{Type: enrollment.AttestationSymmetricKey, RegistrationID: req.RegistrationID}
	switch {
	case req.Authorization == "individual":
		e, err := f.st.Enrollments.Get(ctx, req.RegistrationID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", port.ErrUnauthorized, err)
		}
		id.Enrollment = e
	case strings.HasPrefix(req.Authorization, "group:"):
		g, err := f.st.Groups.Get(ctx, strings.TrimPrefix(req.Authorization, "group:"))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", port.ErrUnauthorized, err)
		}
		id.Group = g
	case req.Authorization == "other-device":
		id.RegistrationID = "someone-else"
		id.Enrollment = &enrollment.IndividualEnrollment{RegistrationID: "someone-else"}
	default:
		return nil, fmt.Errorf("%w: bad key", port.ErrUnauthorized)
	}
	return id, nil
}

type env struct {
	st  *store.Store
	svc *provisioning.Service
	ca  *ca.CA
	now time.Time
	mu  sync.Mutex
}

func (e *env) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

func openBolt(t testing.TB) store.Backend { return testbackend.Bolt(t) }

func newCA(t testing.TB) *ca.CA {
	t.Helper()
	kek := bytes.Repeat([]byte{7}, 32)
	c, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newEnv(t testing.TB, b store.Backend, logger *slog.Logger) *env {
	t.Helper()
	e := &env{now: time.Now().UTC()}
	e.st = store.New(b, e.clock)
	e.ca = newCA(t)
	iss, err := caissuer.New(e.ca)
	if err != nil {
		t.Fatal(err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e.svc, err = provisioning.New(provisioning.Config{
		Store:     e.st,
		Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}},
		Allocator: hashed.New(),
		Issuer:    iss,
		Logger:    logger,
		Now:       e.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) hub(t testing.TB, name string, weight int, applies bool) {
	t.Helper()
	h := &enrollment.Hub{Name: name, AllocationWeight: weight}
	if !applies {
		h.ApplyAllocationPolicy = new(bool)
	}
	if _, err := e.st.Hubs.Put(context.Background(), h, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) individual(t testing.TB, en *enrollment.IndividualEnrollment) {
	t.Helper()
	if en.Attestation == nil {
		en.Attestation = &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}
	}
	if _, err := e.st.Enrollments.Put(context.Background(), en, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) group(t testing.TB, g *enrollment.EnrollmentGroup) {
	t.Helper()
	if g.Attestation == nil {
		g.Attestation = &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}
	}
	if _, err := e.st.Groups.Put(context.Background(), g, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func csrFor(t testing.TB, cn string, curve elliptic.Curve) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// count returns how many items a bucket holds.
func count(t testing.TB, b store.Backend, bucket store.Bucket) int {
	return len(testbackend.Keys(t, b, bucket))
}

func TestRegisterResolve(t *testing.T) {
	ctx := context.Background()
	disabled := enrollment.StatusDisabled
	tests := []struct {
		name       string
		individual *enrollment.IndividualEnrollment
		group      *enrollment.EnrollmentGroup
		auth       string
		wantStatus string
		wantErr    error
		wantDevice string
		wantGroup  string
	}{
		{name: "individual", individual: &enrollment.IndividualEnrollment{RegistrationID: "dev-1"}, auth: "individual", wantStatus: "assigned", wantDevice: "dev-1"},
		{name: "individual with deviceId", individual: &enrollment.IndividualEnrollment{RegistrationID: "dev-1", DeviceID: "thing-1"}, auth: "individual", wantStatus: "assigned", wantDevice: "thing-1"},
		{name: "group", group: &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1"}, auth: "group:g1", wantStatus: "assigned", wantDevice: "dev-1", wantGroup: "g1"},
		{name: "disabled individual", individual: &enrollment.IndividualEnrollment{RegistrationID: "dev-1", Spec: enrollment.Spec{ProvisioningStatus: disabled}}, auth: "individual", wantStatus: "disabled"},
		{name: "disabled group", group: &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1", Spec: enrollment.Spec{ProvisioningStatus: disabled}}, auth: "group:g1", wantStatus: "disabled"},
		{name: "disabled individual under enabled group", individual: &enrollment.IndividualEnrollment{RegistrationID: "dev-1", Spec: enrollment.Spec{ProvisioningStatus: disabled}}, group: &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1"}, auth: "group:g1", wantStatus: "disabled"},
		{name: "enabled individual wins over the group key", individual: &enrollment.IndividualEnrollment{RegistrationID: "dev-1"}, group: &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1"}, auth: "group:g1", wantErr: port.ErrUnauthorized},
		{name: "wrong key", individual: &enrollment.IndividualEnrollment{RegistrationID: "dev-1"}, auth: "wrong", wantErr: port.ErrUnauthorized},
		{name: "no credential", individual: &enrollment.IndividualEnrollment{RegistrationID: "dev-1"}, auth: "", wantErr: port.ErrUnauthorized},
		{name: "attested another registration ID", auth: "other-device", wantErr: port.ErrUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, memory.New(), nil)
			e.hub(t, "hub-a.example.net", 1, true)
			if tc.individual != nil {
				e.individual(t, tc.individual)
			}
			if tc.group != nil {
				e.group(t, tc.group)
			}
			op, err := e.svc.Register(ctx, &port.Request{IDScope: "0ne00000001", RegistrationID: "dev-1", Authorization: tc.auth, Payload: json.RawMessage(`{"a":1}`)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if n := count(t, e.st.Backend, store.BucketRegistrations) + count(t, e.st.Backend, provisioning.BucketOperations); n != 0 {
					t.Fatalf("%d documents stored for a refused request", n)
				}
				return
			}
			if op.Status != tc.wantStatus || op.OperationID == "" {
				t.Fatalf("status %q op %q, want %q", op.Status, op.OperationID, tc.wantStatus)
			}
			rec, err := e.st.Registrations.Get(ctx, "dev-1")
			if tc.wantStatus != "assigned" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("record stored for status %s: %v", tc.wantStatus, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.DeviceID != tc.wantDevice || rec.EnrollmentGroupID != tc.wantGroup || rec.AssignedHub != "hub-a.example.net" ||
				rec.Substatus != enrollment.SubstatusInitialAssignment || len(rec.Payload) != 0 /* never the device's own payload */ || rec.AttestationType != enrollment.AttestationSymmetricKey {
				t.Fatalf("record %+v", rec)
			}
			if op.Registration == nil || op.Registration.ETag != rec.ETag || op.Registration.DeviceID != rec.DeviceID {
				t.Fatalf("operation snapshot %+v differs from record %+v", op.Registration, rec)
			}
		})
	}
}

func TestRegisterAllocation(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		hubs     map[string]bool // name → applyAllocationPolicy
		en       enrollment.IndividualEnrollment
		wantHub  string
		wantFail bool
	}{
		{name: "only hub", hubs: map[string]bool{"a.example.net": true}, wantHub: "a.example.net"},
		{name: "applyAllocationPolicy=false never chosen", hubs: map[string]bool{"a.example.net": false, "b.example.net": true}, wantHub: "b.example.net"},
		{name: "iotHubs restricts", hubs: map[string]bool{"a.example.net": true, "b.example.net": true, "c.example.net": true}, en: enrollment.IndividualEnrollment{Spec: enrollment.Spec{IoTHubs: []string{"C.example.net"}}}, wantHub: "c.example.net"},
		{name: "iotHubHostName wins even when excluded from policy", hubs: map[string]bool{"a.example.net": true, "b.example.net": false}, en: enrollment.IndividualEnrollment{Spec: enrollment.Spec{IoTHubHostName: "b.example.net"}}, wantHub: "b.example.net"},
		{name: "iotHubHostName not linked", hubs: map[string]bool{"a.example.net": true}, en: enrollment.IndividualEnrollment{Spec: enrollment.Spec{IoTHubHostName: "gone.example.net"}}, wantFail: true},
		{name: "no hubs", wantFail: true},
		{name: "no eligible hubs", hubs: map[string]bool{"a.example.net": false}, wantFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, memory.New(), nil)
			for n, ok := range tc.hubs {
				e.hub(t, n, 1, ok)
			}
			en := tc.en
			en.RegistrationID = "dev-1"
			e.individual(t, &en)
			op, err := e.svc.Register(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantFail {
				if op.Status != enrollment.RegistrationFailed || op.ErrorCode != dps.CodeAllocationFailed || op.ErrorMessage == "" {
					t.Fatalf("op = %+v, want failed", op)
				}
				if n := count(t, e.st.Backend, store.BucketRegistrations); n != 0 {
					t.Fatal("record stored for a failed allocation")
				}
				return
			}
			if op.Status != enrollment.RegistrationAssigned || op.Registration.AssignedHub != tc.wantHub {
				t.Fatalf("op = %+v, want hub %s", op, tc.wantHub)
			}
		})
	}
}

// pinned is an allocation policy that answers whatever hub the test sets.
type pinned struct {
	mu  sync.Mutex
	hub string
}

func (p *pinned) Allocate(context.Context, allocation.Input) (allocation.Decision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return allocation.Decision{Hub: p.hub}, nil
}

func TestReprovisionSubstatus(t *testing.T) {
	ctx := context.Background()
	type step struct{ hub, wantHub, wantSub string }
	tests := []struct {
		name   string
		policy *enrollment.ReprovisionPolicy
		steps  []step
	}{
		{name: "default (true,true)", steps: []step{
			{"a", "a", "initialAssignment"},
			{"a", "a", "initialAssignment"},
			{"b", "b", "deviceDataMigrated"},
			{"c", "c", "deviceDataMigrated"},
			{"a", "a", "reprovisionedToInitialAssignment"},
		}},
		{name: "(true,false) reset", policy: &enrollment.ReprovisionPolicy{UpdateHubAssignment: true}, steps: []step{
			{"a", "a", "initialAssignment"},
			{"b", "b", "deviceDataReset"},
			{"b", "b", "deviceDataReset"},
			{"a", "a", "reprovisionedToInitialAssignment"},
		}},
		{name: "(false,true) never moves", policy: &enrollment.ReprovisionPolicy{MigrateDeviceData: true}, steps: []step{
			{"a", "a", "initialAssignment"},
			{"b", "a", "initialAssignment"},
		}},
		{name: "(false,false) never moves", policy: &enrollment.ReprovisionPolicy{}, steps: []step{
			{"b", "b", "initialAssignment"},
			{"a", "b", "initialAssignment"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, memory.New(), nil)
			p := &pinned{}
			svc, err := provisioning.New(provisioning.Config{Store: e.st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}}, Allocator: p, Logger: slog.New(slog.DiscardHandler), Now: e.clock})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{"a", "b", "c"} {
				e.hub(t, h, 1, true)
			}
			e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1", Spec: enrollment.Spec{ReprovisionPolicy: tc.policy}})
			var created *time.Time
			for i, s := range tc.steps {
				p.mu.Lock()
				p.hub = s.hub
				p.mu.Unlock()
				e.advance(time.Minute)
				op, err := svc.Register(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual"})
				if err != nil {
					t.Fatal(err)
				}
				r := op.Registration
				if r.AssignedHub != s.wantHub || r.Substatus != s.wantSub || r.DeviceID != "dev-1" {
					t.Fatalf("step %d: hub %s substatus %s, want %s %s", i, r.AssignedHub, r.Substatus, s.wantHub, s.wantSub)
				}
				if created == nil {
					created = r.CreatedDateTimeUTC
				} else if !r.CreatedDateTimeUTC.Equal(*created) || !r.LastUpdatedDateTimeUTC.After(*created) {
					t.Fatalf("step %d: created %v updated %v", i, r.CreatedDateTimeUTC, r.LastUpdatedDateTimeUTC)
				}
			}
		})
	}
}

func TestRegisterCSR(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		csr     func(t testing.TB) []byte
		wantErr error
	}{
		{name: "good", csr: func(t testing.TB) []byte { return csrFor(t, "dev-1", elliptic.P256()) }},
		{name: "wrong CN", csr: func(t testing.TB) []byte { return csrFor(t, "dev-2", elliptic.P256()) }, wantErr: ca.ErrCSRSubject},
		{name: "CN differs in case", csr: func(t testing.TB) []byte { return csrFor(t, "DEV-1", elliptic.P256()) }, wantErr: ca.ErrCSRSubject},
		{name: "weak key", csr: func(t testing.TB) []byte { return csrFor(t, "dev-1", elliptic.P224()) }, wantErr: ca.ErrCSRKey},
		{name: "garbage", csr: func(testing.TB) []byte { return []byte("not a csr") }, wantErr: ca.ErrCSRMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, openBolt(t), nil)
			e.hub(t, "a.example.net", 1, true)
			e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1", DeviceID: "thing-1"})
			op, err := e.svc.Register(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual", CSR: tc.csr(t)})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, port.ErrInvalid) {
					t.Fatalf("err = %v, want %v and ErrInvalid", err, tc.wantErr)
				}
				for _, b := range []store.Bucket{store.BucketRegistrations, revocation.BucketCertificates, provisioning.BucketOperations} {
					if n := count(t, e.st.Backend, b); n != 0 {
						t.Fatalf("%d items in %s after a refused CSR", n, b)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(op.IssuedCertificateChain) != 3 {
				t.Fatalf("chain of %d", len(op.IssuedCertificateChain))
			}
			leaf, err := x509.ParseCertificate(op.IssuedCertificateChain[0])
			if err != nil {
				t.Fatal(err)
			}
			if leaf.Subject.CommonName != "thing-1" {
				t.Fatalf("leaf CN %q, want the device ID", leaf.Subject.CommonName)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.ca.Roots(), Intermediates: pool(t, op.IssuedCertificateChain[1]), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatal(err)
			}
			serial := fmt.Sprintf("%032x", leaf.SerialNumber)
			c, err := e.svc.Certificates().Get(ctx, serial)
			if err != nil {
				t.Fatalf("certificate %s not stored: %v", serial, err)
			}
			if c.RegistrationID != "dev-1" || c.DeviceID != "thing-1" || !bytes.Equal(c.Chain[0], op.IssuedCertificateChain[0]) {
				t.Fatalf("stored certificate %+v", c)
			}
			rec, err := e.st.Registrations.Get(ctx, "dev-1")
			if err != nil || len(rec.CertificateSerials) != 1 || rec.CertificateSerials[0] != c.Serial {
				t.Fatalf("record %+v, %v", rec, err)
			}
		})
	}
}

func pool(t testing.TB, ders ...[]byte) *x509.CertPool {
	p := x509.NewCertPool()
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		p.AddCert(c)
	}
	return p
}

// failingIssuer stands in for an issuer whose write path we break below.
func TestCertificateNotReturnedWhenWriteFails(t *testing.T) {
	ctx := context.Background()
	b := &failingBackend{Backend: memory.New()}
	e := newEnv(t, b, nil)
	e.hub(t, "a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
	b.fail.Store(true)
	op, err := e.svc.Register(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual", CSR: csrFor(t, "dev-1", elliptic.P256())})
	if err == nil || op != nil {
		t.Fatalf("op %+v err %v: a certificate was returned though its write failed", op, err)
	}
	if errors.Is(err, port.ErrInvalid) || errors.Is(err, port.ErrUnauthorized) {
		t.Fatalf("a store failure was reported as a client fault: %v", err)
	}
	b.fail.Store(false)
	for _, bk := range []store.Bucket{store.BucketRegistrations, revocation.BucketCertificates, provisioning.BucketOperations} {
		if n := count(t, b, bk); n != 0 {
			t.Fatalf("%d items in %s after a failed write", n, bk)
		}
	}
}

func TestOperationStatus(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, memory.New(), nil)
	e.hub(t, "a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-2"})
	op1, err := e.svc.Register(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		regID   string
		auth    string
		opID    string
		advance time.Duration
		wantErr error
	}{
		{name: "own operation", regID: "dev-1", auth: "individual", opID: op1.OperationID},
		{name: "own operation, other case of the registration ID", regID: "DEV-1", auth: "individual", opID: op1.OperationID},
		{name: "another device's operation", regID: "dev-2", auth: "individual", opID: op1.OperationID, wantErr: port.ErrNotFound},
		{name: "unknown operation", regID: "dev-1", auth: "individual", opID: "00000000000000000000000000000000", wantErr: port.ErrNotFound},
		{name: "not authenticated", regID: "dev-1", auth: "wrong", opID: op1.OperationID, wantErr: port.ErrUnauthorized},
		{name: "expired", regID: "dev-1", auth: "individual", opID: op1.OperationID, advance: provisioning.DefaultOperationTTL, wantErr: port.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.advance(tc.advance)
			op, err := e.svc.OperationStatus(ctx, &port.Request{RegistrationID: tc.regID, Authorization: tc.auth}, tc.opID)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (op.OperationID != op1.OperationID || op.Status != "assigned") {
				t.Fatalf("op %+v", op)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, memory.New(), nil)
	e.hub(t, "a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
	if _, err := e.svc.Status(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual"}); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("before registering: %v, want ErrNotFound", err)
	}
	if _, err := e.svc.Register(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual"}); err != nil {
		t.Fatal(err)
	}
	rec, err := e.svc.Status(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual"})
	if err != nil || rec.AssignedHub != "a.example.net" {
		t.Fatalf("%+v %v", rec, err)
	}
	if _, err := e.svc.Status(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "wrong"}); !errors.Is(err, port.ErrUnauthorized) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestConcurrentRegistrationsOfOneDevice(t *testing.T) {
	ctx := context.Background()
	n := 1000
	if testing.Short() {
		n = 100
	}
	b := openBolt(t)
	e := newEnv(t, b, nil)
	for i := range 5 {
		e.hub(t, fmt.Sprintf("hub-%d.example.net", i), 1, true)
	}
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
	csrs := make([][]byte, n)
	for i := range csrs {
		csrs[i] = csrFor(t, "dev-1", elliptic.P256())
	}
	ops := make([]*enrollment.Operation, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ops[i], errs[i] = e.svc.Register(ctx, &port.Request{RegistrationID: "dev-1", Authorization: "individual", CSR: csrs[i]})
		})
	}
	wg.Wait()
	serials := map[string]bool{}
	hub := ""
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("registration %d: %v", i, errs[i])
		}
		leaf, err := x509.ParseCertificate(ops[i].IssuedCertificateChain[0])
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%032x", leaf.SerialNumber)
		if serials[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		serials[s] = true
		if hub == "" {
			hub = ops[i].Registration.AssignedHub
		}
		if ops[i].Registration.AssignedHub != hub || ops[i].Registration.DeviceID != "dev-1" || ops[i].Registration.Substatus != enrollment.SubstatusInitialAssignment {
			t.Fatalf("registration %d: %+v", i, ops[i].Registration)
		}
	}
	rec, err := e.st.Registrations.Get(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	// The record lists the newest certificates only (all unexpired);
	// every certificate stays stored, for revocation.
	if count(t, b, store.BucketRegistrations) != 1 || rec.AssignedHub != hub || len(rec.CertificateSerials) != min(n, provisioning.MaxRenewableCertificates) {
		t.Fatalf("record: hub %s, %d serials, want %s and %d", rec.AssignedHub, len(rec.CertificateSerials), hub, min(n, provisioning.MaxRenewableCertificates))
	}
	for _, s := range rec.CertificateSerials {
		if !serials[s] {
			t.Fatalf("record names serial %s that no answer carried", s)
		}
		c, err := e.svc.Certificates().Get(ctx, s)
		if err != nil || c.RegistrationID != "dev-1" {
			t.Fatalf("certificate %s: %+v %v", s, c, err)
		}
	}
	if got := count(t, b, revocation.BucketCertificates); got != n {
		t.Fatalf("%d certificates stored, want %d", got, n)
	}
	// Each registration replaced the operation of the one before.
	if got := count(t, b, provisioning.BucketOperations); got != 1 {
		t.Fatalf("%d operations stored, want 1", got)
	}
}

func TestNewValidates(t *testing.T) {
	st := store.New(memory.New(), nil)
	good := provisioning.Config{Store: st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{st}}, Allocator: hashed.New(), Logger: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name string
		mod  func(*provisioning.Config)
		ok   bool
	}{
		{"good", func(*provisioning.Config) {}, true},
		{"no store", func(c *provisioning.Config) { c.Store = nil }, false},
		{"no attestors", func(c *provisioning.Config) { c.Attestors = nil }, false},
		{"unknown mechanism", func(c *provisioning.Config) { c.Attestors = map[string]port.Attestor{"psk": fakeAttestor{st}} }, false},
		{"no allocator", func(c *provisioning.Config) { c.Allocator = nil }, false},
		{"no logger", func(c *provisioning.Config) { c.Logger = nil }, false},
		{"negative ttl", func(c *provisioning.Config) { c.OperationTTL = -1 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			_, err := provisioning.New(c)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
