package tpm_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/tpmsim"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/dps"
)

// simDevice is a TPM simulator prepared as the Azure SDKs prepare a TPM.
func simDevice(t *testing.T) (*device.TPM, *tpm.Public, *tpm.Public) {
	t.Helper()
	d, err := device.NewTPM(tpmsim.Open(t))
	if err != nil {
		t.Fatal(err)
	}
	ek, err := tpm.ParseEK(d.EndorsementKey())
	if err != nil {
		t.Fatalf("the simulator's EK is refused: %v", err)
	}
	srk, err := tpm.ParseSRK(d.StorageRootKey())
	if err != nil {
		t.Fatalf("the simulator's SRK is refused: %v", err)
	}
	return d, ek, srk
}

func mac(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// TestActivationBlobOnSimulator is the validation the duplication half
// needs: a real TPM runs ActivateCredential, Import, Load and HMAC on the
// blob, and the HMAC equals the server's.
func TestActivationBlobOnSimulator(t *testing.T) {
	d, ek, srk := simDevice(t)
	data := []byte("0ne0000ABCD%2Fregistrations%2Fdev\n1800000000")
	for i := range 2 { // the challenge, then the key of the assigned answer
		key, err := tpm.NewKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := tpm.MakeActivationBlob(rand.Reader, ek, srk, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.ActivateIdentityKey(blob); err != nil {
			t.Fatalf("blob %d: the TPM refused it: %v", i, err)
		}
		sig, err := d.SignWithIdentity(data)
		if err != nil {
			t.Fatal(err)
		}
		if !hmac.Equal(sig, mac(key, data)) {
			t.Fatalf("blob %d: TPM2_HMAC differs from HMAC-SHA256 with the server's key", i)
		}
	}
}

// TestTamperedBlobRefusedByTPM flips one byte in each of the six parts
// (and the framing): the TPM must refuse, or a key that got in must not
// be the server's.
func TestTamperedBlobRefusedByTPM(t *testing.T) {
	d, ek, srk := simDevice(t)
	key, _ := tpm.NewKey(rand.Reader)
	blob, err := tpm.MakeActivationBlob(rand.Reader, ek, srk, key)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := dps.SplitActivationBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]int{}
	off := 0
	for _, p := range []struct {
		name string
		b    []byte
	}{{"id object", parts.CredentialBlob}, {"credential seed", parts.CredentialSeed}, {"duplicate", parts.Duplicate}, {"duplicate seed", parts.DuplicateSeed}, {"public", parts.Public}} {
		offsets[p.name] = off + len(p.b)/2
		off += len(p.b)
	}
	data := []byte("data")
	for name, at := range offsets {
		t.Run(name, func(t *testing.T) {
			bad := bytes.Clone(blob)
			bad[at] ^= 0x40
			err := d.ActivateIdentityKey(bad)
			if !errors.Is(err, device.ErrTPM) {
				t.Errorf("ActivateIdentityKey(tampered) = %v, want a TPM refusal", err)
			}
			if sig, err := d.SignWithIdentity(data); err == nil && hmac.Equal(sig, mac(key, data)) {
				t.Fatal("a tampered blob gave the TPM the server's key")
			}
		})
	}
}

// TestBlobForAnotherTPMRefused: a blob made for another EK (the right SRK)
// cannot be activated.
func TestBlobForAnotherTPMRefused(t *testing.T) {
	d, _, srk := simDevice(t)
	other := fakeEK(t)
	key, _ := tpm.NewKey(rand.Reader)
	blob, err := tpm.MakeActivationBlob(rand.Reader, other, srk, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ActivateIdentityKey(blob); !errors.Is(err, device.ErrTPM) {
		t.Fatalf("ActivateIdentityKey = %v, want a TPM refusal", err)
	}
}

// fakeEK is an EK-shaped public area around a software RSA key.
func fakeEK(t testing.TB) *tpm.Public {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tpm.ParseEK(tpm.EKTemplatePublic(&k.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
