package deviceapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/throttle"
	"github.com/zdps/zdps/pkg/dps"
)

// TestThrottledAnswers: a throttled request is 429, errorCode 429001, the
// DPS error body and an integer Retry-After from the limit (whole seconds,
// rounded up, at least 1, at most 300 and below the server's idle
// timeout), except a throttled poll of an operation still
// assigning, which is the usual 202 with that Retry-After (and so is the
// admitted poll before it).
func TestThrottledAnswers(t *testing.T) {
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	body := map[string]any{"registrationId": "dev-1"}
	for _, tc := range []struct {
		name   string
		limits limits.Limits
		// admitted requests of the same kind come first
		admitted   int
		kind       string // register, poll
		wantStatus int
		wantRetry  string
	}{
		{"register flood", limits.Limits{Register: throttle.Rate{Count: 10, Per: time.Minute}}, 10, "register", http.StatusTooManyRequests, "6"},
		// The C SDK takes a Retry-After above 300 for 1 s, and keeps its
		// connection while it waits: below the server's IdleTimeout (2m).
		{"long interval capped below the idle timeout", limits.Limits{Register: throttle.Rate{Count: 1, Per: time.Hour}}, 1, "register", http.StatusTooManyRequests, "119"},
		{"sub-second interval rounds up to 1", limits.Limits{Register: throttle.Rate{Count: 20, Per: time.Second}}, 20, "register", http.StatusTooManyRequests, "1"},
		{"poll flood of a final operation", limits.Limits{Poll: throttle.Rate{Count: 5, Per: 10 * time.Second}}, 5, "poll", http.StatusTooManyRequests, "2"},
		{"poll of an assigning operation", limits.Limits{Poll: throttle.Rate{Count: 2, Per: 10 * time.Second}}, 2, "poll-assigning", http.StatusAccepted, "5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{now: time.Now()}
			o := options{limits: tc.limits, now: clk.Now}
			var release chan struct{}
			if tc.kind == "poll-assigning" {
				release = make(chan struct{})
				o.alloc, o.assignWait = slowPolicy{release}, 20*time.Millisecond
			}
			s := newServer(t, o)
			if release != nil {
				t.Cleanup(func() { close(release) })
			}
			var send func() answer
			switch tc.kind {
			case "register":
				send = func() answer { return s.register(t, "dev-1", auth, body) }
			default:
				a := s.register(t, "dev-1", auth, body)
				loc := a.header.Get("Location")
				if loc == "" {
					op := decodeOp(t, a)
					loc = "/" + idScope + "/registrations/dev-1/operations/" + op.OperationID + "?api-version=2021-06-01"
				}
				send = func() answer { return s.do(t, http.MethodGet, loc, auth, nil, nil) }
			}
			for i := range tc.admitted {
				a := send()
				if a.status >= 300 {
					t.Fatalf("request %d: %d %s", i, a.status, a.body)
				}
				// The last admitted poll of an assigning operation already
				// says when the next one is admitted.
				if tc.kind == "poll-assigning" && i == tc.admitted-1 && a.header.Get("Retry-After") != tc.wantRetry {
					t.Fatalf("admitted poll %d: Retry-After %q, want %q", i, a.header.Get("Retry-After"), tc.wantRetry)
				}
			}
			a := send()
			if tc.wantStatus == http.StatusTooManyRequests {
				checkError(t, a, http.StatusTooManyRequests, dps.CodeThrottled)
			} else if op := decodeOp(t, a); a.status != tc.wantStatus || op.Status != "assigning" {
				t.Fatalf("%d %s, want %d assigning", a.status, a.body, tc.wantStatus)
			}
			if got := a.header.Get("Retry-After"); got != tc.wantRetry {
				t.Fatalf("Retry-After %q, want %q", got, tc.wantRetry)
			}
		})
	}
}
