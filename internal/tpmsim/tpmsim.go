// Package tpmsim opens the in-process TPM 2.0 reference simulator
// (go-tpm-tools, cgo) for tests. The simulator is one global instance per
// process: Open blocks until the previous test's simulator is closed, so
// tests that use it must not run in parallel with each other.
package tpmsim

import (
	"testing"

	"github.com/google/go-tpm/tpm2"
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

// StoreEKCertificate stores der at the TCG EK certificate NV index
// (0x01C00002) as a manufacturer does, under platform authorisation, and
// removes it when the test ends.
func StoreEKCertificate(t testing.TB, tpm transport.TPM, der []byte) {
	t.Helper()
	const index = tpm2.TPMHandle(0x01C00002)
	platform := tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)}
	pub := tpm2.TPMSNVPublic{
		NVIndex: index,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{PPWrite: true, WriteDefine: true, PPRead: true, OwnerRead: true, AuthRead: true,
			NoDA: true, PlatformCreate: true, NT: tpm2.TPMNTOrdinary},
		DataSize: uint16(len(der)),
	}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: platform, PublicInfo: tpm2.New2B(pub)}).Execute(tpm); err != nil {
		t.Fatalf("tpmsim: define the EK certificate index: %v", err)
	}
	rp, err := tpm2.NVReadPublic{NVIndex: index}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := (tpm2.NVUndefineSpace{AuthHandle: platform, NVIndex: tpm2.NamedHandle{Handle: index, Name: rp.NVName}}).Execute(tpm); err != nil {
			t.Errorf("tpmsim: undefine the EK certificate index: %v", err)
		}
	})
	for off := 0; off < len(der); off += 512 {
		chunk := der[off:min(off+512, len(der))]
		if _, err := (tpm2.NVWrite{AuthHandle: platform, NVIndex: tpm2.NamedHandle{Handle: index, Name: rp.NVName},
			Data: tpm2.TPM2BMaxNVBuffer{Buffer: chunk}, Offset: uint16(off)}).Execute(tpm); err != nil {
			t.Fatalf("tpmsim: write the EK certificate: %v", err)
		}
	}
}
