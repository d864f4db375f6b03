package interop

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestNodeSDKThrottledPolls: the official Node.js SDK (HTTPS) registers
// while a custom webhook takes 6 s, so zdps answers 202 and the SDK polls,
// under a poll limit far tighter than the 1 s Retry-After it would get
// otherwise (--throttle-poll 1/4s). Every 202 of the assigning operation
// carries the Retry-After after which the limit admits the next poll; the
// SDK honours it, so it polls about every 4 s instead of every second, is
// never refused, never sees a 429 (on which it gives up: its HTTP
// transport turns every status >= 300 into an error before its own 429
// branch is reached, also when the 429 answers the poll that would have
// found the operation just finished), and ends assigned.
func TestNodeSDKThrottledPolls(t *testing.T) {
	const hookDelay = 6 * time.Second
	srv := zdpstest.Start(t, "--assign-wait", "200ms", "--throttle-poll", "1/4s",
		"--allocation-webhook-timeout", "15s", "--allocation-webhook-retries", "0")
	addHubs(t, srv, "hub-a.example.net", "hub-slow.example.net")
	hook := slowHook(hookDelay, func(string) {})
	defer hook.Close()
	key := groupKey(t, srv, &enrollment.EnrollmentGroup{EnrollmentGroupID: "throttle-custom", Spec: enrollment.Spec{AllocationPolicy: enrollment.PolicyCustom,
		CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: hook.URL + "/allocate", APIVersion: "2019-03-31"}}})

	start := time.Now()
	res := nodeDevice(t, srv, srv.IDScope(), "node-throttle-1", deviceKey(key, "node-throttle-1"))
	if !res.OK || res.Status != "assigned" || res.AssignedHub != "hub-slow.example.net" {
		t.Fatalf("%+v\n%s", res, srv.Logs())
	}
	elapsed := time.Since(start)
	srv.LogContains("registration assigned") // the log reaches the test through a pipe
	polls, throttled, answered429 := throttleNodeLog(t, srv.Logs())
	t.Logf("Node.js SDK, webhook %s, --throttle-poll 1/4s: assigned in %s after %d polls (%d at the default 1 s Retry-After), %d throttled, %d answers 429",
		hookDelay, elapsed.Round(100*time.Millisecond), polls, int(hookDelay/time.Second), throttled, answered429)
	if !backgroundLogged(srv.Logs(), "node-throttle-1") {
		t.Errorf("the register PUT did not answer 202\n%s", srv.Logs())
	}
	if maxPolls := int(elapsed/(4*time.Second)) + 1; polls < 1 || polls > maxPolls || throttled != 0 || answered429 != 0 {
		t.Errorf("%d polls, %d throttled, %d answered 429; want 1 to %d polls (one per 4 s), none throttled or 429\n%s", polls, throttled, answered429, maxPolls, srv.Logs())
	}
}

// throttleNodeLog counts, in the JSON log, the operation polls, the
// throttled ones (logged at most once per 10 s) and the device API
// answers 429.
func throttleNodeLog(t *testing.T, logs string) (polls, throttled, answered429 int) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		route, _ := m["route"].(string)
		switch {
		case m["msg"] == "request" && strings.Contains(route, "/registrations/"):
			if strings.Contains(route, "/operations/") {
				polls++
			}
			if m["status"] == float64(http.StatusTooManyRequests) {
				answered429++
			}
		case m["msg"] == "operation status refused" && m["outcome"] == "throttled":
			throttled++
		}
	}
	return polls, throttled, answered429
}
