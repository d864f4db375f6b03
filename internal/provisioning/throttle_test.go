package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/throttle"
	"github.com/zdps/zdps/pkg/enrollment"
)

// countingAllocator counts the registrations that got past the checks
// that come before allocation (attestation, the limits).
type countingAllocator struct {
	allocation.Policy
	calls atomic.Int32
}

func (c *countingAllocator) Allocate(ctx context.Context, in allocation.Input) (allocation.Decision, error) {
	c.calls.Add(1)
	return c.Policy.Allocate(ctx, in)
}

// outcomes summarises answers in order, runs collapsed: "ok×5
// poll:2s×15". A throttled answer shows its limit and RetryAfter; it must
// be a *ThrottledError that errors.Is ErrThrottled.
func outcomes(t *testing.T, errs []error) string {
	t.Helper()
	var out []string
	last, n := "", 0
	flush := func() {
		if n > 0 {
			out = append(out, fmt.Sprintf("%s×%d", last, n))
		}
	}
	for _, err := range errs {
		s := "ok"
		var te *limits.ThrottledError
		switch {
		case err == nil:
		case errors.As(err, &te):
			if !errors.Is(err, port.ErrThrottled) {
				t.Fatalf("%v does not wrap ErrThrottled", err)
			}
			s = strings.ReplaceAll(te.Limit, " ", "-") + ":" + te.RetryAfter.String()
		case errors.Is(err, port.ErrUnauthorized):
			s = "unauthorized"
		default:
			s = err.Error()
		}
		if s != last {
			flush()
			last, n = s, 0
		}
		n++
	}
	flush()
	return strings.Join(out, " ")
}

func TestThrottle(t *testing.T) {
	ctx := context.Background()
	rate := func(s string) throttle.Rate {
		r, err := throttle.ParseRate(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	dev := func(id string) *port.Request {
		return &port.Request{RegistrationID: id, Authorization: "individual"}
	}
	grp := func(id string) *port.Request {
		return &port.Request{RegistrationID: id, Authorization: "group:g1"}
	}
	repeat := func(n int, f func(i int) error) []error {
		var errs []error
		for i := range n {
			errs = append(errs, f(i))
		}
		return errs
	}
	for _, tc := range []struct {
		name   string
		limits limits.Limits
		// run sends the requests; svc has registered nothing yet.
		run       func(e *env, svc *provisioning.Service) []error
		want      string
		allocated int32 // registrations that got past the limits
	}{
		{
			name:   "poll flood",
			limits: limits.Limits{Poll: rate("5/10s")},
			run: func(e *env, svc *provisioning.Service) []error {
				op, err := svc.Register(ctx, dev("dev-1"))
				if err != nil {
					t.Fatal(err)
				}
				errs := repeat(20, func(int) error { _, err := svc.OperationStatus(ctx, dev("dev-1"), op.OperationID); return err })
				e.advance(2 * time.Second)
				return append(errs, repeat(2, func(int) error { _, err := svc.OperationStatus(ctx, dev("DEV-1"), op.OperationID); return err })...)
			},
			want:      "ok×5 poll:2s×15 ok×1 poll:2s×1",
			allocated: 1,
		},
		{
			name:   "status lookups share the poll budget",
			limits: limits.Limits{Poll: rate("2/10s")},
			run: func(e *env, svc *provisioning.Service) []error {
				op, err := svc.Register(ctx, dev("dev-1"))
				if err != nil {
					t.Fatal(err)
				}
				_, err1 := svc.OperationStatus(ctx, dev("dev-1"), op.OperationID)
				_, err2 := svc.Status(ctx, dev("dev-1"))
				_, err3 := svc.Status(ctx, dev("dev-1"))
				return []error{err1, err2, err3}
			},
			want:      "ok×2 poll:5s×1",
			allocated: 1,
		},
		{
			name:   "register flood, per device and case-insensitive",
			limits: limits.Limits{Register: rate("10/1m")},
			run: func(e *env, svc *provisioning.Service) []error {
				errs := repeat(15, func(i int) error {
					id := "dev-1"
					if i%2 == 1 {
						id = "DEV-1"
					}
					_, err := svc.Register(ctx, dev(id))
					return err
				})
				return append(errs, repeat(2, func(int) error { _, err := svc.Register(ctx, dev("dev-2")); return err })...)
			},
			want:      "ok×10 register:6s×5 ok×2",
			allocated: 12,
		},
		{
			name:   "group limit over all the group's devices",
			limits: limits.Limits{Register: rate("10/1m"), GroupRegister: rate("3/1m")},
			run: func(e *env, svc *provisioning.Service) []error {
				errs := repeat(5, func(i int) error { _, err := svc.Register(ctx, grp(fmt.Sprintf("g-dev-%d", i))); return err })
				// Individual enrollments are in no group.
				return append(errs, repeat(2, func(int) error { _, err := svc.Register(ctx, dev("dev-1")); return err })...)
			},
			want:      "ok×3 group-register:20s×2 ok×2",
			allocated: 5,
		},
		{
			name:   "instance limit over every device",
			limits: limits.Limits{InstanceRegister: rate("4/1m")},
			run: func(e *env, svc *provisioning.Service) []error {
				errs := repeat(3, func(i int) error { _, err := svc.Register(ctx, grp(fmt.Sprintf("g-dev-%d", i))); return err })
				return append(errs, repeat(3, func(int) error { _, err := svc.Register(ctx, dev("dev-2")); return err })...)
			},
			want:      "ok×4 instance-register:15s×2",
			allocated: 4,
		},
		{
			name:   "a device over its own limit spends nothing of the instance's",
			limits: limits.Limits{Register: rate("2/1m"), InstanceRegister: rate("3/1m")},
			run: func(e *env, svc *provisioning.Service) []error {
				errs := repeat(10, func(int) error { _, err := svc.Register(ctx, dev("dev-1")); return err })
				return append(errs, repeat(1, func(int) error { _, err := svc.Register(ctx, dev("dev-2")); return err })...)
			},
			want:      "ok×2 register:30s×8 ok×1",
			allocated: 3,
		},
		{
			name:   "unauthenticated requests do not spend the device's budget",
			limits: limits.Limits{Poll: rate("5/10s"), Register: rate("10/1m"), GroupRegister: rate("10/1m"), InstanceRegister: rate("10/1m")},
			run: func(e *env, svc *provisioning.Service) []error {
				bad := &port.Request{RegistrationID: "dev-1", Authorization: "stolen-nothing"}
				errs := repeat(50, func(int) error { _, err := svc.Register(ctx, bad); return err })
				errs = append(errs, repeat(50, func(int) error { _, err := svc.OperationStatus(ctx, bad, "x"); return err })...)
				var opID string
				errs = append(errs, repeat(10, func(int) error {
					op, err := svc.Register(ctx, dev("dev-1"))
					if err == nil {
						opID = op.OperationID
					}
					return err
				})...)
				return append(errs, repeat(5, func(int) error { _, err := svc.OperationStatus(ctx, dev("dev-1"), opID); return err })...)
			},
			want:      "unauthorized×100 ok×15",
			allocated: 10,
		},
		{
			name: "limits off",
			run: func(e *env, svc *provisioning.Service) []error {
				return repeat(100, func(int) error { _, err := svc.Register(ctx, dev("dev-1")); return err })
			},
			want:      "ok×100",
			allocated: 100,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, memory.New(), nil)
			e.hub(t, "a.example.net", 1, true)
			e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
			e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-2"})
			e.group(t, &enrollment.EnrollmentGroup{EnrollmentGroupID: "g1"})
			alloc := &countingAllocator{Policy: hashed.New()}
			svc := e.serviceWith(t, alloc, func(c *provisioning.Config) {
				c.AssignWait, c.AssignTimeout = 0, 0
				c.Limits = tc.limits
			})
			if got := outcomes(t, tc.run(e, svc)); got != tc.want {
				t.Errorf("answers: %s\nwant:    %s", got, tc.want)
			}
			if n := alloc.calls.Load(); n != tc.allocated {
				t.Errorf("%d registrations got past the limits, want %d", n, tc.allocated)
			}
		})
	}
}

// A poll of an operation still assigning answers it with RetryAfter set
// to when the next poll is admitted (the transport's 202 Retry-After), and
// a throttled one too, instead of an error; once the operation is final, a
// throttled poll is a ThrottledError (429).
func TestThrottledPollOfAssigningOperation(t *testing.T) {
	ctx := context.Background()
	e := asyncEnv(t, "memory")
	gate := newGate()
	svc := e.serviceWith(t, gate, func(c *provisioning.Config) {
		c.Limits = limits.Limits{Poll: throttle.Rate{Count: 2, Per: 10 * time.Second}}
	})
	req := devReq(t, "")
	op, err := svc.Register(ctx, req)
	if err != nil || op.Status != enrollment.RegistrationAssigning {
		t.Fatalf("register: %+v %v, want assigning", op, err)
	}
	// Burst of 2, then one per 5 s.
	for i, want := range []time.Duration{0, 5 * time.Second, 5 * time.Second, 4 * time.Second} {
		if i == 3 {
			e.advance(time.Second)
		}
		got := poll(t, svc, req, op.OperationID)
		if got.Status != enrollment.RegistrationAssigning || got.RetryAfter != want {
			t.Fatalf("poll %d while assigning: %s, RetryAfter %s; want assigning, %s", i, got.Status, got.RetryAfter, want)
		}
	}
	gate.open()
	wait(t, svc)
	e.advance(4 * time.Second)
	if got := poll(t, svc, req, op.OperationID); got.Status != enrollment.RegistrationAssigned || got.RetryAfter != 0 {
		t.Fatalf("poll after the interval: %s, RetryAfter %s; want assigned", got.Status, got.RetryAfter)
	}
	got, err := svc.OperationStatus(ctx, req, op.OperationID)
	if got != nil || !errors.Is(err, port.ErrThrottled) {
		t.Fatalf("throttled poll of a final operation: %+v, %v; want only ErrThrottled", got, err)
	}
}

func TestNewRefusesSubNanosecondRates(t *testing.T) {
	e := newEnv(t, memory.New(), nil)
	_, err := provisioning.New(provisioning.Config{
		Store:     e.st,
		Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: fakeAttestor{e.st}},
		Allocator: hashed.New(),
		Logger:    testLogger(t),
		Limits:    limits.Limits{Poll: throttle.Rate{Count: 10, Per: time.Nanosecond}},
	})
	if err == nil || !strings.Contains(err.Error(), "Limits.Poll") {
		t.Fatalf("New = %v, want an error naming Limits.Poll", err)
	}
}

// Refusals are INFO with outcome throttled, one line per device and limit
// per 10 s however fast the device floods.
func TestThrottledRefusalsLogOncePerInterval(t *testing.T) {
	ctx := context.Background()
	var buf strings.Builder
	e := newEnv(t, memory.New(), nil)
	e.hub(t, "a.example.net", 1, true)
	e.individual(t, &enrollment.IndividualEnrollment{RegistrationID: "dev-1"})
	svc := e.serviceWith(t, hashed.New(), func(c *provisioning.Config) {
		c.AssignWait, c.AssignTimeout = 0, 0
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		c.Limits = limits.Limits{Register: throttle.Rate{Count: 1, Per: time.Hour}}
	})
	req := &port.Request{RegistrationID: "dev-1", Authorization: "individual"}
	for i := range 100 {
		if i == 50 {
			e.advance(10 * time.Second)
		}
		_, _ = svc.Register(ctx, req)
	}
	lines := strings.Count(buf.String(), "outcome=throttled")
	if lines != 2 || strings.Contains(buf.String(), "level=ERROR") {
		t.Fatalf("%d throttled lines for 99 refusals over 10 s, want 2 and no ERROR:\n%s", lines, buf.String())
	}
	if !strings.Contains(buf.String(), `level=INFO msg="register refused" registration_id=dev-1 attestation=symmetricKey enrollment=dev-1 outcome=throttled limit=register`) {
		t.Fatalf("log line:\n%s", buf.String())
	}
}
