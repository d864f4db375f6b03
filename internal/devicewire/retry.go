package devicewire

import (
	"math"
	"strconv"
	"time"
)

const (
	// DefaultRetryAfter is the Retry-After of 202 answers.
	DefaultRetryAfter = time.Second
	// MaxRetryAfter is the largest Retry-After the C SDK honours.
	MaxRetryAfter = 300 * time.Second
)

// MaxWait caps a Retry-After set by a throttle limit: MaxRetryAfter (the
// C SDK takes anything larger for 1 s) and, when idle is set, shorter
// than the connection's idle timeout (the device keeps its connection
// while it waits).
func MaxWait(idle time.Duration) time.Duration {
	if idle > 0 && idle-time.Second < MaxRetryAfter {
		return idle - time.Second // rounded up, still shorter than idle
	}
	return MaxRetryAfter
}

// RetryAfterSeconds is d in whole seconds, rounded up, at least 1 and,
// when limit is set, at most limit.
func RetryAfterSeconds(d, limit time.Duration) string {
	if limit > 0 {
		d = min(d, limit)
	}
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}
