package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zdps/zdps/internal/throttle"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Limits are the request rates the pipeline admits, counted only once the
// device authenticated: an unauthenticated flood cannot spend a real
// device's budget. A zero Rate is off. The counters are in memory, per
// Service (per replica): N replicas admit up to N times a limit, and a
// restart resets them. They protect the store and the log; they are not
// billing.
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

// ThrottledError is a refusal by one of the Limits; it wraps ErrThrottled.
type ThrottledError struct {
	// RetryAfter is when the request would be admitted.
	RetryAfter time.Duration
	// Limit names the limit: poll, register, group register, instance
	// register.
	Limit string
	key   string // what was counted, for the log limiter
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v: %s limit reached; retry after %s", ErrThrottled, e.Limit, e.RetryAfter)
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// RetryAfterOf is the interval of the ThrottledError in err's chain; 0
// when there is none.
func RetryAfterOf(err error) time.Duration {
	var te *ThrottledError
	if errors.As(err, &te) {
		return te.RetryAfter
	}
	return 0
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

// limiters are the Limits at work; a nil limiter is off.
type limiters struct {
	poll, register, group, instance *throttle.Limiter
	log                             *throttle.Limiter
}

func newLimiters(l Limits) limiters {
	return limiters{
		poll:     throttle.New(l.Poll, 0),
		register: throttle.New(l.Register, 0),
		group:    throttle.New(l.GroupRegister, 0),
		instance: throttle.New(l.InstanceRegister, 0),
		log:      throttle.New(logEvery, 0),
	}
}

// check counts one request of key on l.
func (s *Service) check(l *throttle.Limiter, limit, key string) error {
	if ok, retry := l.Allow(key, s.now()); !ok {
		return &ThrottledError{RetryAfter: retry, Limit: limit, key: limit + "\x00" + key}
	}
	return nil
}

// checkRegister applies the register limits to an authenticated device,
// the narrowest first: a device over its own limit spends nothing of its
// group's or the instance's budget.
func (s *Service) checkRegister(regID string, t *target) error {
	if err := s.check(s.lim.register, LimitRegister, enrollment.Key(regID)); err != nil {
		return err
	}
	if g := t.groupID(); g != "" {
		if err := s.check(s.lim.group, LimitGroupRegister, enrollment.Key(g)); err != nil {
			return err
		}
	}
	return s.check(s.lim.instance, LimitInstanceRegister, instanceKey)
}

// checkSource refuses a source an alert response blocked.
func (s *Service) checkSource(ctx context.Context, req *Request) error {
	if s.cfg.SourceBlocked == nil || req == nil {
		return nil
	}
	if d, blocked := s.cfg.SourceBlocked(ctx, req.RemoteAddr); blocked {
		return &ThrottledError{RetryAfter: d, Limit: "source", key: "source " + req.RemoteAddr}
	}
	return nil
}

// checkPoll applies the poll limit to an authenticated device.
func (s *Service) checkPoll(regID string) error {
	return s.check(s.lim.poll, LimitPoll, enrollment.Key(regID))
}

// logThrottled logs a refusal by the Limits at INFO, at most once per
// logEvery per device and limit.
func (s *Service) logThrottled(ctx context.Context, log *slog.Logger, what string, te *ThrottledError) {
	if ok, _ := s.lim.log.Allow(te.key, s.now()); !ok {
		return
	}
	log.InfoContext(ctx, what+" refused", "outcome", OutcomeThrottled, "limit", te.Limit, "retry_after", te.RetryAfter)
}
