// Package tpmsim opens the in-process TPM 2.0 reference simulator
// (go-tpm-tools, cgo) for tests. The simulator is one global instance per
// process: Open blocks until the previous test's simulator is closed, so
// tests that use it must not run in parallel with each other.
package tpmsim

import (
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"
)

// Open starts a freshly manufactured simulator and closes it when t ends.
func Open(t testing.TB) transport.TPM {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("tpmsim: open the TPM simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}
