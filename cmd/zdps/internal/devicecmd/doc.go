// Package devicecmd holds the commands that act as devices, for tests,
// demos and benchmarks: `zdps device register` (one device over the DPS
// device API), `zdps dice simulate` (a DICE certificate chain), `zdps tpm
// ek` (a TPM's identity) and `zdps bench` (a fleet of simulated devices
// against a running server).
//
// Key values never appear in messages.
package devicecmd
