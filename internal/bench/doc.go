// Package bench is the fleet simulator behind `zdps bench`: it provisions N
// simulated devices against a running zdps through the real device API
// (HTTPS, the DPS wire format, pkg/device) and reports throughput, latency
// percentiles and errors by kind.
//
// A run has three phases. Setup (optional) creates what the devices need
// through the service API, in bulk: individual enrollments or one
// enrollment group, a test CA for X.509, software TPMs (internal/softtpm)
// and their individual enrollments for TPM, hubs when the instance has
// none.
// Preparation makes each device's material before the clock starts: keys
// and CSRs (unless Config.GenerateInline), device certificates for X.509,
// so that the simulator's own CPU is spent outside the measured phase as
// far as possible. The timed phase registers every device with
// Config.Concurrency workers, optionally paced by Config.Rate; each device
// opens its own TLS connection (as real devices do) unless
// Config.KeepAlive. Cleanup (optional) deletes what setup created and the
// registration records of the run.
//
// The package talks to the service only through pkg/device and
// pkg/client; it never opens the store. Simulated device keys exist only
// in memory and never appear in the report.
package bench
