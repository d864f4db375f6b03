package deviceapi_test

import (
	"context"
	"crypto/elliptic"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/deviceapi"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/pkg/dps"
)

// slowPolicy answers the first eligible hub once release is closed.
type slowPolicy struct{ release chan struct{} }

func (p slowPolicy) Allocate(ctx context.Context, in allocation.Input) (allocation.Decision, error) {
	select {
	case <-p.release:
		return allocation.Decision{Hub: in.EligibleHubs[0].Name}, nil
	case <-ctx.Done():
		return allocation.Decision{}, ctx.Err()
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func decodeOp(t testing.TB, a answer) deviceapi.RegistrationOperationStatus {
	t.Helper()
	var op deviceapi.RegistrationOperationStatus
	if err := json.Unmarshal(a.body, &op); err != nil {
		t.Fatalf("%d %s: %v", a.status, a.body, err)
	}
	return op
}

// TestSlowAllocation: a registration slower than AssignWait answers 202 +
// operationId + Retry-After + Location; polls answer 202 with Retry-After
// while it is assigning, then 200 assigned with the issued chain; another
// request of the device meanwhile is throttled (429 + Retry-After); an
// operation whose run died answers 200 failed after its deadline.
func TestSlowAllocation(t *testing.T) {
	release := make(chan struct{})
	clk := &clock{now: time.Now()}
	s := newServer(t, options{viaAPI: true, alloc: slowPolicy{release}, assignWait: 20 * time.Millisecond, now: clk.Now})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	body := map[string]any{"registrationId": "dev-1", "csr": csr(t, "dev-1", elliptic.P256())}

	a := s.register(t, "dev-1", auth, body)
	op := decodeOp(t, a)
	if a.status != http.StatusAccepted || a.header.Get("Retry-After") != "1" || a.header.Get("Location") == "" || op.Status != "assigning" || op.OperationID == "" {
		t.Fatalf("register: %d Retry-After %q Location %q %s", a.status, a.header.Get("Retry-After"), a.header.Get("Location"), a.body)
	}
	p := s.do(t, http.MethodGet, a.header.Get("Location"), auth, []byte(`{}`), nil)
	if got := decodeOp(t, p); p.status != http.StatusAccepted || p.header.Get("Retry-After") != "1" || got.Status != "assigning" || got.OperationID != op.OperationID {
		t.Fatalf("poll while assigning: %d %q %s", p.status, p.header.Get("Retry-After"), p.body)
	}
	other := s.register(t, "dev-1", auth, map[string]any{"registrationId": "dev-1", "payload": map[string]int{"v": 2}})
	checkError(t, other, http.StatusTooManyRequests, dps.CodeThrottled)
	if other.header.Get("Retry-After") != "1" {
		t.Fatalf("429 without Retry-After: %v", other.header)
	}

	close(release)
	if err := s.svc.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	p = s.do(t, http.MethodGet, a.header.Get("Location"), auth, []byte(`{}`), nil)
	got := decodeOp(t, p)
	if p.status != http.StatusOK || got.Status != "assigned" || got.OperationID != op.OperationID || got.RegistrationState == nil ||
		got.RegistrationState.DeviceID != "thing-1" || got.RegistrationState.AssignedHub == "" || len(got.RegistrationState.IssuedCertificateChain) != 3 {
		t.Fatalf("poll after completion: %d %s", p.status, p.body)
	}

	// A run that never ends (its replica died): failed after the deadline.
	t.Run("deadline", func(t *testing.T) {
		stuck := make(chan struct{})
		defer close(stuck)
		clk2 := &clock{now: time.Now()}
		s := newServer(t, options{alloc: slowPolicy{stuck}, assignWait: 20 * time.Millisecond, now: clk2.Now})
		a := s.register(t, "dev-1", auth, body)
		if a.status != http.StatusAccepted {
			t.Fatalf("register: %d %s", a.status, a.body)
		}
		clk2.add(provisioning.DefaultAssignTimeout)
		p := s.do(t, http.MethodGet, a.header.Get("Location"), auth, nil, nil)
		got := decodeOp(t, p)
		if p.status != http.StatusOK || got.Status != "failed" || got.OperationID == "" || got.RegistrationState == nil ||
			got.RegistrationState.ErrorCode != dps.CodeAssignmentTimedOut || got.RegistrationState.ErrorMessage != provisioning.MessageAssignmentTimedOut {
			t.Fatalf("poll after the deadline: %d %s", p.status, p.body)
		}
	})
}
