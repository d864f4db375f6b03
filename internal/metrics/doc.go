// Package metrics defines zdps's Prometheus metrics and serves them. Every
// name has the zdps_ prefix; counters end in _total and durations are
// seconds. Label values come from fixed sets (attestation, transport,
// outcome, error class, rule) or from operator configuration (hub names),
// never from device input: a registration ID is never a label. A value
// outside its set is counted as "other", so a bug cannot grow the series
// without bound.
//
// The pipeline, the transports, the store and the CA report through the
// methods of *Metrics; a nil *Metrics accepts every call and records
// nothing, so tests and tools need not build one.
package metrics
