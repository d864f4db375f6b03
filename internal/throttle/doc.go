// Package throttle is a GCRA (generic cell rate algorithm) rate limiter
// keyed by string, for the per-device, per-group and instance-wide limits
// of the device API.
//
// GCRA keeps one number per key, the theoretical arrival time (TAT): the
// time at which the key's budget is whole again. A Rate of Count per Per
// admits a burst of Count, then one request every Per/Count. A request at
// now is admitted when TAT - now <= Per - Per/Count, and then moves TAT
// Per/Count later; a refused request does not move it, and the caller can
// retry after the returned interval.
//
// Memory is bounded twice: a key whose TAT is past holds no information
// (its budget is whole), so a sweep drops such keys; and a Limiter holds
// at most MaxKeys keys. When it is full (after a sweep), a new key is
// admitted without being tracked: the limiter fails open. A full table
// means that many distinct keys were each used within the last Per; for
// the device limits, distinct authenticated devices. Failing closed would
// refuse devices that never sent a request before because others did,
// which is exactly what a per-device limit must not do; a flood of
// distinct keys is the job of a coarser limit with few keys (per group,
// instance-wide), which never fills up.
//
// State is in memory and per process: N processes admit up to N times the
// rate, and a restart resets it.
package throttle
