package softtpm_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/softtpm"
	"github.com/zdps/zdps/pkg/dps"
)

func newTPM(t *testing.T) *softtpm.TPM {
	t.Helper()
	ek, err := softtpm.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	srk, err := softtpm.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	d, err := softtpm.New(ek, srk)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// blobFor is what the service sends the TPM: MakeActivationBlob to its EK
// and SRK.
func blobFor(t *testing.T, d *softtpm.TPM, key []byte) []byte {
	t.Helper()
	ek, err := tpm.ParseEK(d.EndorsementKey())
	if err != nil {
		t.Fatal(err)
	}
	srk, err := tpm.ParseSRK(d.StorageRootKey())
	if err != nil {
		t.Fatal(err)
	}
	b, err := tpm.MakeActivationBlob(rand.Reader, ek, srk, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestActivate: the software TPM recovers the key the service's blob
// carries and signs with it, and refuses what a TPM refuses.
func TestActivate(t *testing.T) {
	d, other := newTPM(t), newTPM(t)
	key := bytes.Repeat([]byte{7}, tpm.KeySize)
	if _, err := d.SignWithIdentity([]byte("x")); err == nil {
		t.Fatal("signed before any key was imported")
	}
	blob := blobFor(t, d, key)
	if err := d.ActivateIdentityKey(blob); err != nil {
		t.Fatal(err)
	}
	got, err := d.SignWithIdentity([]byte("scope/registrations/dev\n1700000000"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("scope/registrations/dev\n1700000000"))
	if !hmac.Equal(got, m.Sum(nil)) {
		t.Fatal("the signature is not HMAC-SHA256 under the service's key")
	}

	if err := other.ActivateIdentityKey(blob); !errors.Is(err, softtpm.ErrRefused) {
		t.Errorf("another TPM activated the blob: %v", err)
	}
	parts, err := dps.SplitActivationBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	// Flip the last byte of each of the first four parts in turn.
	off := 0
	for i, p := range [][]byte{parts.CredentialBlob, parts.CredentialSeed, parts.Duplicate, parts.DuplicateSeed} {
		off += len(p)
		tampered := bytes.Clone(blob)
		tampered[off-1] ^= 1
		if err := d.ActivateIdentityKey(tampered); err == nil {
			t.Errorf("part %d tampered: accepted", i+1)
		}
	}
	if err := d.ActivateIdentityKey(blob[:len(blob)/2]); err == nil {
		t.Error("truncated blob accepted")
	}
}
