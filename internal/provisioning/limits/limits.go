package limits

import (
	"errors"
	"fmt"
	"time"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/throttle"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Limits are the request rates the pipeline admits, counted only once the
// device authenticated: an unauthenticated flood cannot spend a real
// device's budget. A zero Rate is off.
type Limits struct {
	// Poll: operation polls and status lookups per device.
	Poll throttle.Rate
	// Register: register requests per device.
	Register throttle.Rate
	// GroupRegister: register requests per enrollment group, over all its
	// devices.
	GroupRegister throttle.Rate
	// InstanceRegister: register requests of the whole instance.
	InstanceRegister throttle.Rate
}

// DefaultLimits are Azure's poll limit (5 per 10 s per device) and 10
// registers per minute per device; the group and instance limits are off.
func DefaultLimits() Limits {
	return Limits{
		Poll:     throttle.Rate{Count: 5, Per: 10 * time.Second},
		Register: throttle.Rate{Count: 10, Per: time.Minute},
	}
}

// Errors are what is wrong with l: a rate of more than one request per
// nanosecond, which no limiter can count.
func (l Limits) Errors() []error {
	var errs []error
	for name, r := range map[string]throttle.Rate{"Poll": l.Poll, "Register": l.Register, "GroupRegister": l.GroupRegister, "InstanceRegister": l.InstanceRegister} {
		if !r.Off() && r.Interval() <= 0 {
			errs = append(errs, fmt.Errorf("Limits.%s %d/%s: more than one request per nanosecond", name, r.Count, r.Per))
		}
	}
	return errs
}

// ThrottledError is a refusal by one of the Limits; it wraps
// port.ErrThrottled.
type ThrottledError struct {
	// RetryAfter is when the request would be admitted.
	RetryAfter time.Duration
	// Limit names the limit: poll, register, group register, instance
	// register.
	Limit string
	key   string // what was counted, for the log limiter
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v: %s limit reached; retry after %s", port.ErrThrottled, e.Limit, e.RetryAfter)
}

func (e *ThrottledError) Unwrap() error { return port.ErrThrottled }

// RetryAfterOf is the interval of the ThrottledError in err's chain; 0
// when there is none.
func RetryAfterOf(err error) time.Duration {
	var te *ThrottledError
	if errors.As(err, &te) {
		return te.RetryAfter
	}
	return 0
}

// Blocked is the refusal of a source an alert response blocked for d.
func Blocked(remoteAddr string, d time.Duration) *ThrottledError {
	return &ThrottledError{RetryAfter: d, Limit: "source", key: "source " + remoteAddr}
}

// Limit names of ThrottledError.Limit.
const (
	LimitPoll             = "poll"
	LimitRegister         = "register"
	LimitGroupRegister    = "group register"
	LimitInstanceRegister = "instance register"
)

// instanceKey is the one key of the instance-wide limit.
const instanceKey = "instance"

// logEvery is how often refusals of one key are logged: a device
// flooding at 100/s logs one line per interval, not 100.
var logEvery = throttle.Rate{Count: 1, Per: 10 * time.Second}

// Set is the Limits at work; a nil limiter is off. It is safe for
// concurrent use.
type Set struct {
	poll, register, group, instance *throttle.Limiter
	log                             *throttle.Limiter
}

// New starts counting l.
func New(l Limits) *Set {
	return &Set{
		poll:     throttle.New(l.Poll, 0),
		register: throttle.New(l.Register, 0),
		group:    throttle.New(l.GroupRegister, 0),
		instance: throttle.New(l.InstanceRegister, 0),
		log:      throttle.New(logEvery, 0),
	}
}

// check counts one request of key on l.
func check(l *throttle.Limiter, limit, key string, now time.Time) error {
	if ok, retry := l.Allow(key, now); !ok {
		return &ThrottledError{RetryAfter: retry, Limit: limit, key: limit + "\x00" + key}
	}
	return nil
}

// Register applies the register limits to an authenticated device of
// group ("" for an individual enrollment), the narrowest first: a device
// over its own limit spends nothing of its group's or the instance's
// budget.
func (s *Set) Register(regID, group string, now time.Time) error {
	if err := check(s.register, LimitRegister, enrollment.Key(regID), now); err != nil {
		return err
	}
	if group != "" {
		if err := check(s.group, LimitGroupRegister, enrollment.Key(group), now); err != nil {
			return err
		}
	}
	return check(s.instance, LimitInstanceRegister, instanceKey, now)
}

// Poll applies the poll limit to an authenticated device.
func (s *Set) Poll(regID string, now time.Time) error {
	return check(s.poll, LimitPoll, enrollment.Key(regID), now)
}

// PollWait is how long until the poll limit admits the device's next
// poll.
func (s *Set) PollWait(regID string, now time.Time) time.Duration {
	return s.poll.Wait(enrollment.Key(regID), now)
}

// ShouldLog reports whether a refusal is to be logged: at most once per
// logEvery per device and limit.
func (s *Set) ShouldLog(te *ThrottledError, now time.Time) bool {
	ok, _ := s.log.Allow(te.key, now)
	return ok
}
