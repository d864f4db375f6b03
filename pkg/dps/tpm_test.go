package dps_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/pkg/dps"
)

func TestTPMRegistrationID(t *testing.T) {
	// SHA-256 of the empty string, base32, lower case, no padding.
	if got, want := dps.TPMRegistrationID(nil), "4oymiquy7qobjgx36tejs35zeqt24qpemsnzgtfeswmrw6csxbkq"; got != want {
		t.Fatalf("TPMRegistrationID = %q, want %q", got, want)
	}
}

// FuzzSplitActivationBlob: no input panics; the parts of an accepted blob
// concatenate back to it.
func FuzzSplitActivationBlob(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	ek, _ := tpm.ParseEK(tpm.EKTemplatePublic(&k.PublicKey))
	srk, _ := tpm.ParseSRK(tpm.MarshalRSAPublic(&k.PublicKey, tpm.SRKAttributes, nil))
	blob, err := tpm.MakeActivationBlob(rand.Reader, ek, srk, make([]byte, tpm.KeySize))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Add(blob[:len(blob)-2]) // without the empty TPM2B_DATA
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := dps.SplitActivationBlob(b)
		if err != nil {
			if !errors.Is(err, dps.ErrMalformed) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		var all []byte
		for _, p := range [][]byte{a.CredentialBlob, a.CredentialSeed, a.Duplicate, a.DuplicateSeed, a.Public, a.EncryptedURI} {
			all = append(all, p...)
		}
		if !bytes.Equal(all, b) && !bytes.Equal(all, append(bytes.Clone(b), 0, 0)) {
			t.Fatal("parts do not concatenate to the blob")
		}
	})
}
