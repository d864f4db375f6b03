// Package limits holds the request rates the registration pipeline
// admits (Limits) and applies them: polls per device, registers per
// device, per group and per instance, each a throttle.Limiter keyed by
// the lower-cased ID, and a refusal as a *ThrottledError wrapping
// port.ErrThrottled with its RetryAfter. It exists apart from
// internal/provisioning so that the throttle's rules (narrowest limit
// first, what is counted, how often a refusal is logged) are one small
// package; the pipeline decides when to count (only once the device
// authenticated).
//
// The counters are in memory, per Set (per replica): N replicas admit up
// to N times a limit, and a restart resets them. They protect the store
// and the log; they are not billing.
package limits
