// Package softtpm is a TPM in software for load generation: it holds an
// EK and an SRK as ordinary RSA keys and performs, in Go, what a TPM does
// with Azure DPS's authenticationKey blob (ActivateCredential, then Import
// of the HMAC key) and the HMAC signing that follows. It lets `zdps bench`
// run a fleet of TPM devices, which the one-per-process reference
// simulator cannot. It protects nothing: never use it for a real device.
package softtpm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/pkg/dps"
)

// ErrRefused is the error of a blob the TPM would refuse (wrong EK or SRK,
// integrity check failed, malformed).
var ErrRefused = errors.New("softtpm: activation blob refused")

// TPM is a software TPM; safe for concurrent use.
type TPM struct {
	ek, srk       *rsa.PrivateKey
	ekPub, srkPub []byte // TPM2B_PUBLIC
	srkName       []byte

	mu  sync.Mutex
	key []byte // the imported HMAC key
}

// New makes a TPM with the given EK and SRK (RSA 2048, as the TCG
// templates). Keys may be shared between TPMs of a simulated fleet; the
// service sees different devices as long as their registration IDs differ.
func New(ek, srk *rsa.PrivateKey) (*TPM, error) {
	t := &TPM{ek: ek, srk: srk, ekPub: tpm.EKTemplatePublic(&ek.PublicKey), srkPub: tpm.MarshalRSAPublic(&srk.PublicKey, tpm.SRKAttributes, nil)}
	if _, err := tpm.ParseEK(t.ekPub); err != nil {
		return nil, err
	}
	s, err := tpm.ParseSRK(t.srkPub)
	if err != nil {
		return nil, err
	}
	t.srkName = s.Name()
	return t, nil
}

// GenerateKey makes an RSA 2048 key for an EK or an SRK.
func GenerateKey() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }

// EndorsementKey is the EK's TPM2B_PUBLIC.
func (t *TPM) EndorsementKey() []byte { return t.ekPub }

// StorageRootKey is the SRK's TPM2B_PUBLIC.
func (t *TPM) StorageRootKey() []byte { return t.srkPub }

// SignWithIdentity is HMAC-SHA256 under the imported key.
func (t *TPM) SignWithIdentity(data []byte) ([]byte, error) {
	t.mu.Lock()
	key := t.key
	t.mu.Unlock()
	if key == nil {
		return nil, errors.New("softtpm: no key imported")
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil), nil
}

// ActivateIdentityKey recovers the HMAC key from blob as a TPM does:
// ActivateCredential with the EK releases the inner wrapping key bound to
// Name(SRK), then Import under the SRK unwraps the key.
func (t *TPM) ActivateIdentityKey(blob []byte) error {
	b, err := dps.SplitActivationBlob(blob)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	innerWrapKey, err := t.activateCredential(body(b.CredentialBlob), body(b.CredentialSeed))
	if err != nil {
		return err
	}
	key, err := t.importKey(body(b.Duplicate), body(b.DuplicateSeed), body(b.Public), innerWrapKey)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.key = key
	t.mu.Unlock()
	return nil
}

// activateCredential is TPM2_ActivateCredential: the seed is RSA-OAEP to
// the EK with label "IDENTITY"; idObject is TPM2B(HMAC) ‖ encIdentity.
func (t *TPM) activateCredential(idObject, encSeed []byte) ([]byte, error) {
	seed, err := rsa.DecryptOAEP(sha256.New(), nil, t.ek, encSeed, []byte("IDENTITY\x00"))
	if err != nil {
		return nil, fmt.Errorf("%w: credential seed: %w", ErrRefused, err)
	}
	cred, err := unwrap(seed, t.srkName, idObject)
	if err != nil {
		return nil, fmt.Errorf("%w: credential: %w", ErrRefused, err)
	}
	return sized(cred)
}

// importKey is TPM2_Import of a duplicate with an inner wrapper: the
// outer seed is RSA-OAEP to the SRK with label "DUPLICATE".
func (t *TPM) importKey(dup, encSeed, public, innerWrapKey []byte) ([]byte, error) {
	seed, err := rsa.DecryptOAEP(sha256.New(), nil, t.srk, encSeed, []byte("DUPLICATE\x00"))
	if err != nil {
		return nil, fmt.Errorf("%w: duplication seed: %w", ErrRefused, err)
	}
	d := sha256.Sum256(public)
	name := append(binary.BigEndian.AppendUint16(nil, tpm.AlgSHA256), d[:]...)
	inner, err := unwrap(seed, name, dup)
	if err != nil {
		return nil, fmt.Errorf("%w: duplicate: %w", ErrRefused, err)
	}
	if err := cfb(innerWrapKey, inner); err != nil {
		return nil, err
	}
	digest, err := sized(inner)
	if err != nil {
		return nil, err
	}
	sens2B := inner[2+len(digest):]
	h := sha256.New()
	h.Write(sens2B)
	h.Write(name)
	if !hmac.Equal(h.Sum(nil), digest) {
		return nil, fmt.Errorf("%w: inner integrity", ErrRefused)
	}
	sens, err := sized(sens2B)
	if err != nil {
		return nil, err
	}
	// TPMT_SENSITIVE: type, authValue, seedValue, the key.
	if len(sens) < 2 || binary.BigEndian.Uint16(sens) != tpm.AlgKeyedHash {
		return nil, fmt.Errorf("%w: not a keyed-hash object", ErrRefused)
	}
	rest := sens[2:]
	for range 2 {
		v, err := sized(rest)
		if err != nil {
			return nil, err
		}
		rest = rest[2+len(v):]
	}
	key, err := sized(rest)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%w: no key in the sensitive area", ErrRefused)
	}
	return append([]byte(nil), key...), nil
}

// unwrap checks and removes an outer wrapper: b is TPM2B(HMAC) ‖ enc,
// HMAC(KDFa(seed, "INTEGRITY"), enc ‖ name), enc is AES-128-CFB under
// KDFa(seed, "STORAGE", name). It returns the decrypted enc.
func unwrap(seed, name, b []byte) ([]byte, error) {
	mac, err := sized(b)
	if err != nil {
		return nil, err
	}
	enc := append([]byte(nil), b[2+len(mac):]...)
	m := hmac.New(sha256.New, tpm2.KDFa(crypto.SHA256, seed, "INTEGRITY", nil, nil, sha256.Size*8))
	m.Write(enc)
	m.Write(name)
	if !hmac.Equal(m.Sum(nil), mac) {
		return nil, errors.New("integrity check failed")
	}
	if err := cfb(tpm2.KDFa(crypto.SHA256, seed, "STORAGE", name, nil, 128), enc); err != nil {
		return nil, err
	}
	return enc, nil
}

// cfb decrypts b in place with AES-CFB and a zero IV.
func cfb(key, b []byte) error {
	c, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	//nolint:staticcheck // CFB is what TPM 2.0 specifies for these wrappers.
	cipher.NewCFBDecrypter(c, make([]byte, aes.BlockSize)).XORKeyStream(b, b)
	return nil
}

// sized reads a TPM2B at the start of b and returns its contents.
func sized(b []byte) ([]byte, error) {
	if len(b) < 2 || len(b)-2 < int(binary.BigEndian.Uint16(b)) {
		return nil, fmt.Errorf("%w: truncated structure", ErrRefused)
	}
	return b[2 : 2+int(binary.BigEndian.Uint16(b))], nil
}

// body is a TPM2B's contents (SplitActivationBlob keeps the size).
func body(b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	return b[2:]
}
