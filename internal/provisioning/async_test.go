package provisioning_test

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/operations"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// gatedAllocator is a slow allocation webhook: each call blocks until the
// test closes release (or the run's context ends), then picks the first
// eligible hub, or fails with err.
type gatedAllocator struct {
	release chan struct{}
	entered chan struct{}
	calls   atomic.Int32
	err     error
	once    sync.Once
}

func newGate() *gatedAllocator {
	return &gatedAllocator{release: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (g *gatedAllocator) open() { g.once.Do(func() { close(g.release) }) }

func (g *gatedAllocator) Allocate(ctx context.Context, in allocation.Input) (allocation.Decision, error) {
	g.calls.Add(1)
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return allocation.Decision{}, ctx.Err()
	}
	if g.err != nil {
		return allocation.Decision{}, g.err
	}
	return allocation.Decision{Hub: in.EligibleHubs[0].Name}, nil
}

const (
	testAssignWait    = 20 * time.Millisecond
	testAssignTimeout = time.Minute
)

// replica is another provisioning service on e's store and clock, as a
// second zdps process on the same backend would be. It waits at most
// testAssignWait for allocation. The test's cleanup opens gates and waits
// for background runs before the store closes.
func (e *env) replica(t testing.TB, alloc allocation.Policy) *provisioning.Service {
	t.Helper()
	return e.serviceWith(t, alloc, func(*provisioning.Config) {})
}

// serviceWith is replica with the Config changed by edit first.
func (e *env) serviceWith(t testing.TB, alloc allocation.Policy, edit func(*provisioning.Config)) *provisioning.Service {
	t.Helper()
	iss, err := caissuer.New(e.ca)
	if err != nil {
		t.Fatal(err)
	}
	cfg := provisioning.Config{
		Store:         e.st,
		Attestors:     map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}},
		Allocator:     alloc,
		Issuer:        iss,
		Logger:        testLogger(t),
		Now:           e.clock,
		AssignWait:    testAssignWait,
		AssignTimeout: testAssignTimeout,
	}
	edit(&cfg)
	svc, err := provisioning.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if g, ok := alloc.(*gatedAllocator); ok {
			g.open()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Wait(ctx); err != nil {
			t.Error(err)
		}
	})
	return svc
}

func testLogger(testing.TB) *slog.Logger { return slog.New(slog.DiscardHandler) }

func asyncEnv(t *testing.T, backend string) *env {
	t.Helper()
	b := store.Backend(memory.New())
	if backend == "bolt" {
		b = openBolt(t)
	}
	e := newEnv(t, b, nil)
	e.hub(t, "a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1", DeviceID: "thing-1"})
	return e
}

func devReq(t testing.TB, payload string) *port.Request {
	req := &port.Request{IDScope: "0ne00000001", RegistrationID: "dev-1", Authorization: "individual", CSR: csrFor(t, "dev-1", elliptic.P256())}
	if payload != "" {
		req.Payload = json.RawMessage(payload)
	}
	return req
}

func wait(t testing.TB, svc *provisioning.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func poll(t testing.TB, svc *provisioning.Service, req *port.Request, opID string) *enrollment.Operation {
	t.Helper()
	op, err := svc.OperationStatus(context.Background(), req, opID)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// TestRegisterAsync: a slow allocation answers assigning; polls on this
// and on another service sharing the store answer assigning, then
// assigned with the hub, the device ID and the issued chain, which the
// record and the certificate store hold too.
func TestRegisterAsync(t *testing.T) {
	for _, backend := range []string{"memory", "bolt"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			e := asyncEnv(t, backend)
			gate := newGate()
			a := e.replica(t, gate)
			b := e.replica(t, hashed.New())
			req := devReq(t, `{"m":1}`)

			op, err := a.Register(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if op.Status != enrollment.RegistrationAssigning || op.OperationID == "" || op.Deadline.IsZero() {
				t.Fatalf("register: %+v, want assigning with an operation ID and a deadline", op)
			}
			for name, svc := range map[string]*provisioning.Service{"same": a, "replica": b} {
				if got := poll(t, svc, req, op.OperationID); got.Status != enrollment.RegistrationAssigning {
					t.Fatalf("%s: poll while assigning: %s", name, got.Status)
				}
			}
			if _, err := e.st.Registrations.Get(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("record stored before the allocation ended: %v", err)
			}

			gate.open()
			wait(t, a)
			got := poll(t, b, req, op.OperationID)
			if got.Status != enrollment.RegistrationAssigned || got.Registration == nil ||
				got.Registration.AssignedHub != "a.example.net" || got.Registration.DeviceID != "thing-1" || len(got.Registration.Payload) != 0 /* the device's payload is not echoed */ {
				t.Fatalf("poll after completion: %+v", got)
			}
			if len(got.IssuedCertificateChain) != 3 {
				t.Fatalf("issued chain of %d certificates", len(got.IssuedCertificateChain))
			}
			leaf, err := x509.ParseCertificate(got.IssuedCertificateChain[0])
			if err != nil {
				t.Fatal(err)
			}
			rec, err := e.st.Registrations.Get(ctx, "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			serial := fmt.Sprintf("%032x", leaf.SerialNumber)
			if len(rec.CertificateSerials) != 1 || rec.CertificateSerials[0] != serial || leaf.Subject.CommonName != "thing-1" {
				t.Fatalf("record %+v, leaf %s CN %q", rec, serial, leaf.Subject.CommonName)
			}
			if c, err := a.Certificates().Get(ctx, serial); err != nil || c.OperationID != op.OperationID {
				t.Fatalf("certificate %s: %+v %v", serial, c, err)
			}
			if n := count(t, e.st.Backend, operations.IndexAssigning); n != 0 {
				t.Fatalf("%d entries left in the assigning index", n)
			}
			if gate.calls.Load() != 1 {
				t.Fatalf("allocator called %d times", gate.calls.Load())
			}
		})
	}
}

// TestRegisterAsyncFast: what completes within AssignWait answers the
// final state at once, as without AssignWait.
func TestRegisterAsyncFast(t *testing.T) {
	e := asyncEnv(t, "memory")
	svc := e.replica(t, hashed.New())
	svc2, err := provisioning.New(provisioning.Config{Store: e.st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}},
		Allocator: hashed.New(), Logger: testLogger(t), Now: e.clock, AssignWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*provisioning.Service{"short wait": svc, "long wait": svc2} {
		req := devReq(t, "")
		if s == svc2 {
			req.CSR = nil // svc2 has no issuer
		}
		op, err := s.Register(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if name == "long wait" && op.Status != enrollment.RegistrationAssigned {
			t.Fatalf("%s: %s, want assigned", name, op.Status)
		}
		if op.Status == enrollment.RegistrationAssigning {
			wait(t, s) // 20 ms may be too short on a loaded machine
		}
	}
}

// TestRegisterAsyncFinalFirst: the run stores its final state before the
// request stores assigning; the final state wins and Register answers it.
func TestRegisterAsyncFinalFirst(t *testing.T) {
	ctx := context.Background()
	e := asyncEnv(t, "bolt")
	gate := newGate()
	a := e.replica(t, gate)
	provisioning.SetDetachedHook(a, func() {
		gate.open()
		wait(t, a)
	})
	req := devReq(t, "")
	op, err := a.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != enrollment.RegistrationAssigned || len(op.IssuedCertificateChain) != 3 {
		t.Fatalf("register answered %s with %d certificates, want the final assigned state", op.Status, len(op.IssuedCertificateChain))
	}
	if got := poll(t, a, req, op.OperationID); got.Status != enrollment.RegistrationAssigned {
		t.Fatalf("stored operation %s: the assigning write overwrote the final state", got.Status)
	}
	if n := count(t, e.st.Backend, operations.IndexAssigning); n != 0 {
		t.Fatalf("%d entries in the assigning index", n)
	}
}

// TestRegisterAsyncDeadline: the replica running a registration dies (its
// run never ends before the deadline): after the deadline, a poll on
// another replica answers failed, a register there starts over, and the
// late run cannot commit anymore.
func TestRegisterAsyncDeadline(t *testing.T) {
	tests := []struct {
		name   string
		closer string // what meets the expired operation first: "poll", "register" or "late run"
	}{
		{"poll closes it", "poll"},
		{"register closes it", "register"},
		{"late run closes it", "late run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := asyncEnv(t, "bolt")
			gate := newGate()
			dead := e.replica(t, gate)
			other := e.replica(t, hashed.New())
			req := devReq(t, "")
			op, err := dead.Register(ctx, req)
			if err != nil || op.Status != enrollment.RegistrationAssigning {
				t.Fatalf("register: %+v %v", op, err)
			}
			e.advance(testAssignTimeout)
			var again *enrollment.Operation
			switch tc.closer {
			case "poll":
				got := poll(t, other, req, op.OperationID)
				if got.Status != enrollment.RegistrationFailed || got.ErrorCode != dps.CodeAssignmentTimedOut || got.ErrorMessage != provisioning.MessageAssignmentTimedOut {
					t.Fatalf("poll after the deadline: %+v", got)
				}
			case "register":
				if again, err = other.Register(ctx, req); err != nil {
					t.Fatalf("register while a stale operation is assigning: %v", err)
				}
			}
			gate.open() // the late run: it must not commit
			wait(t, dead)
			got := poll(t, other, req, op.OperationID)
			if got.Status != enrollment.RegistrationFailed || got.ErrorCode != dps.CodeAssignmentTimedOut {
				t.Fatalf("operation after the late run: %+v", got)
			}
			if again == nil {
				for _, b := range []store.Bucket{store.BucketRegistrations, revocation.BucketCertificates, operations.IndexAssigning} {
					if n := count(t, e.st.Backend, b); n != 0 {
						t.Fatalf("%d items in %s after a registration that timed out", n, b)
					}
				}
				if again, err = other.Register(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			if again.OperationID == op.OperationID {
				t.Fatal("register after a failed operation reused it")
			}
			if again.Status == enrollment.RegistrationAssigning {
				wait(t, other)
				again = poll(t, other, req, again.OperationID)
			}
			if again.Status != enrollment.RegistrationAssigned {
				t.Fatalf("register after the deadline: %+v", again)
			}
			if n := count(t, e.st.Backend, revocation.BucketCertificates); n != 1 {
				t.Fatalf("%d certificates stored, want only the new registration's", n)
			}
		})
	}
}

// TestRegisterAsyncInflight: while a registration is assigning, the same
// request joins it (same operation, no second allocation) and a different
// one is throttled; once it ended, a register starts a new one; a stale
// assigning operation past its deadline does not block the device.
func TestRegisterAsyncInflight(t *testing.T) {
	ctx := context.Background()
	e := asyncEnv(t, "memory")
	gate := newGate()
	a := e.replica(t, gate)
	b := e.replica(t, gate)
	req := devReq(t, `{"v":1}`)
	first, err := a.Register(ctx, req)
	if err != nil || first.Status != enrollment.RegistrationAssigning {
		t.Fatalf("register: %+v %v", first, err)
	}
	tests := []struct {
		name    string
		req     *port.Request
		wantErr error
	}{
		{"same request joins", req, nil},
		{"other payload is throttled", &port.Request{RegistrationID: "dev-1", Authorization: "individual", CSR: req.CSR, Payload: json.RawMessage(`{"v":2}`)}, port.ErrThrottled},
		{"other CSR is throttled", devReq(t, `{"v":1}`), port.ErrThrottled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, err := b.Register(ctx, tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (op.OperationID != first.OperationID || op.Status != enrollment.RegistrationAssigning) {
				t.Fatalf("joined %+v, want operation %s", op, first.OperationID)
			}
		})
	}
	if n := gate.calls.Load(); n != 1 {
		t.Fatalf("allocator called %d times while one registration was assigning", n)
	}
	gate.open()
	wait(t, a)
	next, err := b.Register(ctx, tests[1].req)
	if err != nil || next.OperationID == first.OperationID {
		t.Fatalf("register after the first ended: %+v %v", next, err)
	}
	wait(t, b)
	if got := poll(t, a, req, next.OperationID); got.Status != enrollment.RegistrationAssigned || len(got.Registration.Payload) != 0 {
		t.Fatalf("second registration: %+v", got)
	}
}

// TestRegisterAsyncFailures: failures after Register stopped waiting end
// the operation as failed with the code a device can act on, and store no
// record and no certificate.
func TestRegisterAsyncFailures(t *testing.T) {
	tests := []struct {
		name     string
		allocErr error
		csrCN    string
		wantCode int
	}{
		{"allocation fails", fmt.Errorf("%w: webhook says no", allocation.ErrPolicyFailed), "dev-1", dps.CodeAllocationFailed},
		{"CSR refused", nil, "dev-2", dps.CodeBadArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := asyncEnv(t, "bolt")
			gate := newGate()
			gate.err = tc.allocErr
			a := e.replica(t, gate)
			req := devReq(t, "")
			req.CSR = csrFor(t, tc.csrCN, elliptic.P256())
			op, err := a.Register(ctx, req)
			if err != nil || op.Status != enrollment.RegistrationAssigning {
				t.Fatalf("register: %+v %v", op, err)
			}
			gate.open()
			wait(t, a)
			got := poll(t, a, req, op.OperationID)
			if got.Status != enrollment.RegistrationFailed || got.ErrorCode != tc.wantCode || got.ErrorMessage == "" {
				t.Fatalf("operation %+v, want failed with %d", got, tc.wantCode)
			}
			for _, b := range []store.Bucket{store.BucketRegistrations, revocation.BucketCertificates, operations.IndexAssigning} {
				if n := count(t, e.st.Backend, b); n != 0 {
					t.Fatalf("%d items in %s", n, b)
				}
			}
		})
	}
}

// TestWaitBounded: Wait gives up when its context ends first.
func TestWaitBounded(t *testing.T) {
	e := asyncEnv(t, "memory")
	gate := newGate()
	a := e.replica(t, gate)
	if _, err := a.Register(context.Background(), devReq(t, "")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := a.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v with a run blocked", err)
	}
}

// TestOperationKeepsSerial: the stored operation holds the issued
// certificate's serial, not its chain; the answer and a poll carry the
// chain, read from the certificate record; an operation stored with the
// chain itself (before) is answered as it is.
func TestOperationKeepsSerial(t *testing.T) {
	ctx := context.Background()
	e := asyncEnv(t, "memory")
	svc := e.replica(t, hashed.New())
	req := devReq(t, "")
	op, err := svc.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != enrollment.RegistrationAssigned || len(op.IssuedCertificateChain) != 3 {
		t.Fatalf("answer %s with %d certificates", op.Status, len(op.IssuedCertificateChain))
	}
	ops := operations.Collection(e.st.Backend, nil)
	stored, err := ops.Get(ctx, op.OperationID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.IssuedCertificateChain) != 0 || stored.IssuedCertificateSerial == "" {
		t.Fatalf("stored operation: %d certificates, serial %q; want the serial alone", len(stored.IssuedCertificateChain), stored.IssuedCertificateSerial)
	}
	got := poll(t, svc, req, op.OperationID)
	if len(got.IssuedCertificateChain) != 3 || !bytes.Equal(got.IssuedCertificateChain[0], op.IssuedCertificateChain[0]) {
		t.Fatalf("poll: %d certificates", len(got.IssuedCertificateChain))
	}
	// A record of an older zdps: the chain in the operation.
	stored.IssuedCertificateSerial, stored.IssuedCertificateChain = "", op.IssuedCertificateChain
	if _, err := ops.Put(ctx, stored, store.Condition{IfMatch: stored.ETag}); err != nil {
		t.Fatal(err)
	}
	if got := poll(t, svc, req, op.OperationID); len(got.IssuedCertificateChain) != 3 {
		t.Fatalf("poll of an old record: %d certificates", len(got.IssuedCertificateChain))
	}
}
