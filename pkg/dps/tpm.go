package dps

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// TPMRegistrationID is the registration ID DPS derives from a TPM's
// endorsement key: the lower-case unpadded base32 of the SHA-256 of its
// TPM2B_PUBLIC, as the Azure SDKs compute it.
func TPMRegistrationID(ekTPM2B []byte) string {
	d := sha256.Sum256(ekTPM2B)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(d[:]))
}

// PayloadEKCertificateField is the register payload member a TPM device
// may carry its EK certificate in (base64 DER), a zdps extension.
const PayloadEKCertificateField = "tpmEkCertificate"

// ErrMalformed: a TPM structure from the other side does not parse.
var ErrMalformed = errors.New("dps: malformed TPM structure")

// ActivationBlob is the authenticationKey of a TPM registration split into
// its six TPM structures, each still with its 16-bit size (ready to hand
// to a TPM command as the matching TPM2B).
type ActivationBlob struct {
	CredentialBlob []byte // TPM2B_ID_OBJECT
	CredentialSeed []byte // TPM2B_ENCRYPTED_SECRET, to the EK
	Duplicate      []byte // TPM2B_PRIVATE
	DuplicateSeed  []byte // TPM2B_ENCRYPTED_SECRET, to the SRK
	Public         []byte // TPM2B_PUBLIC of the HMAC key
	EncryptedURI   []byte // TPM2B_DATA, usually empty
}

// MaxActivationBlobSize bounds SplitActivationBlob's input.
const MaxActivationBlobSize = 8 << 10

// SplitActivationBlob splits an authenticationKey blob (the device side of
// the server's MakeActivationBlob). It checks only the framing: the TPM
// checks the content. Errors wrap ErrMalformed.
func SplitActivationBlob(blob []byte) (*ActivationBlob, error) {
	if len(blob) > MaxActivationBlobSize {
		return nil, fmt.Errorf("%w: activation blob longer than %d bytes", ErrMalformed, MaxActivationBlobSize)
	}
	rest, ok := blob, true
	part := func() []byte {
		if !ok || len(rest) < 2 {
			ok = false
			return nil
		}
		n := 2 + int(binary.BigEndian.Uint16(rest))
		if len(rest) < n {
			ok = false
			return nil
		}
		v := rest[:n:n]
		rest = rest[n:]
		return v
	}
	a := &ActivationBlob{
		CredentialBlob: part(),
		CredentialSeed: part(),
		Duplicate:      part(),
		DuplicateSeed:  part(),
		Public:         part(),
	}
	if ok && len(rest) > 0 {
		a.EncryptedURI = part()
	} else {
		a.EncryptedURI = []byte{0, 0}
	}
	if !ok {
		return nil, fmt.Errorf("%w: activation blob is truncated", ErrMalformed)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the activation blob", ErrMalformed, len(rest))
	}
	return a, nil
}
