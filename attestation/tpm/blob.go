package tpm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-tpm/tpm2"
)

// KeySize is the size of the HMAC-SHA256 keys zdps hands to devices.
const KeySize = 32

// innerWrapKeySize is the AES-128 key of the duplication blob's inner
// wrapper, the credential that MakeCredential protects.
const innerWrapKeySize = 16

// HMACKeyAttributes are the attributes of the imported HMAC key:
// userWithAuth | noDA | sign (what the Azure SDKs expect, and what lets the
// device use it with an empty password and no lockout).
const HMACKeyAttributes = AttrUserWithAuth | AttrNoDA | AttrSign

// NewKey returns KeySize random bytes from rand.
func NewKey(rand io.Reader) ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := io.ReadFull(rand, k); err != nil {
		return nil, fmt.Errorf("tpm: random key: %w", err)
	}
	return k, nil
}

// MakeActivationBlob builds the Azure DPS authenticationKey blob that gives
// key to the TPM holding ek and srk (docs/protocol.md#tpm-challenge), the concatenation of:
//
//  1. TPM2B_ID_OBJECT: MakeCredential(ek, innerWrapKey, Name(srk))
//  2. TPM2B_ENCRYPTED_SECRET: its seed, RSA-OAEP to ek ("IDENTITY")
//  3. TPM2B_PRIVATE: key as a KEYEDHASH sensitive area duplicated to srk,
//     inner wrapper AES-128-CFB under innerWrapKey, outer wrapper from a
//     seed
//  4. TPM2B_ENCRYPTED_SECRET: that seed, RSA-OAEP to srk ("DUPLICATE")
//  5. TPM2B_PUBLIC: the HMAC key's public area
//  6. TPM2B_DATA: empty
//
// Only a TPM that holds both ek's private key (to run ActivateCredential
// and recover innerWrapKey) and a loaded object named Name(srk) whose
// private key opens the seed of part 4 can import key. ek and srk must have
// passed CheckEK and CheckSRK. key is KeySize bytes; it is not retained.
func MakeActivationBlob(rand io.Reader, ek, srk *Public, key []byte) ([]byte, error) {
	if ek == nil || srk == nil {
		return nil, errors.New("tpm: MakeActivationBlob needs an EK and an SRK")
	}
	if err := ek.CheckEK(); err != nil {
		return nil, err
	}
	if err := srk.CheckSRK(); err != nil {
		return nil, err
	}
	if len(key) == 0 || len(key) > 128 {
		return nil, errors.New("tpm: HMAC key must be 1 to 128 bytes")
	}
	innerWrapKey := make([]byte, innerWrapKeySize)
	if _, err := io.ReadFull(rand, innerWrapKey); err != nil {
		return nil, fmt.Errorf("tpm: random inner wrapping key: %w", err)
	}
	defer clear(innerWrapKey)

	// Parts 1 and 2: go-tpm's MakeCredential, against the EK.
	ekPub, err := tpm2.Unmarshal[tpm2.TPMTPublic](ek.Raw)
	if err != nil {
		return nil, fmt.Errorf("%w: EK: %v", ErrMalformed, err)
	}
	ekKEM, err := tpm2.ImportEncapsulationKey(ekPub)
	if err != nil {
		return nil, fmt.Errorf("%w: EK: %v", ErrMalformed, err)
	}
	idObject, credSecret, err := tpm2.CreateCredential(rand, ekKEM, srk.Name(), innerWrapKey)
	if err != nil {
		return nil, fmt.Errorf("tpm: MakeCredential: %w", err)
	}

	// Parts 3 to 5: the duplication blob.
	seedValue := make([]byte, sha256.Size)
	if _, err := io.ReadFull(rand, seedValue); err != nil {
		return nil, fmt.Errorf("tpm: random seed value: %w", err)
	}
	pub := hmacPublic(seedValue, key)
	name := nameOf(pub)
	sensitive := hmacSensitive(seedValue, key)
	defer clear(sensitive)
	dup, dupSecret, err := duplicate(rand, srk, name, sensitive, innerWrapKey)
	if err != nil {
		return nil, err
	}

	var out []byte
	out = append(out, tpm2b(idObject)...)
	out = append(out, tpm2b(credSecret)...)
	out = append(out, tpm2b(dup)...)
	out = append(out, tpm2b(dupSecret)...)
	out = append(out, tpm2b(pub)...)
	out = append(out, tpm2b(nil)...)
	return out, nil
}

// hmacPublic is the TPMT_PUBLIC of a KEYEDHASH HMAC-SHA256 signing key:
// unique = SHA-256(seedValue ‖ key).
func hmacPublic(seedValue, key []byte) []byte {
	h := sha256.New()
	h.Write(seedValue)
	h.Write(key)
	b := binary.BigEndian.AppendUint16(nil, AlgKeyedHash)
	b = binary.BigEndian.AppendUint16(b, AlgSHA256)
	b = binary.BigEndian.AppendUint32(b, HMACKeyAttributes)
	b = append(b, tpm2b(nil)...)                    // authPolicy
	b = binary.BigEndian.AppendUint16(b, AlgHMAC)   // TPMT_KEYEDHASH_SCHEME
	b = binary.BigEndian.AppendUint16(b, AlgSHA256) // TPMS_SCHEME_HMAC
	return append(b, tpm2b(h.Sum(nil))...)          // unique
}

// hmacSensitive is the TPMT_SENSITIVE of the HMAC key, empty authValue.
func hmacSensitive(seedValue, key []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, AlgKeyedHash)
	b = append(b, tpm2b(nil)...) // authValue
	b = append(b, tpm2b(seedValue)...)
	return append(b, tpm2b(key)...)
}

func nameOf(public []byte) []byte {
	d := sha256.Sum256(public)
	return append(binary.BigEndian.AppendUint16(nil, AlgSHA256), d[:]...)
}

// duplicate produces TPM2_Duplicate's output for sensitive (a
// TPMT_SENSITIVE of the object called name) to the parent srk, with an
// inner wrapper under innerWrapKey (TPM 2.0 Part 1, "Duplication"):
//
//	inner  = AES-CFB(innerWrapKey, IV 0, TPM2B(H(TPM2B(sens) ‖ name)) ‖ TPM2B(sens))
//	seed   : random, RSA-OAEP(srk, label "DUPLICATE")
//	outer  = AES-CFB(KDFa(seed, "STORAGE", name), IV 0, inner)
//	hmac   = HMAC(KDFa(seed, "INTEGRITY"), outer ‖ name)
//	result = TPM2B(hmac) ‖ outer        (the buffer of the TPM2B_PRIVATE)
//
// The hash is the parent's (and the object's) nameAlg, SHA-256; the
// symmetric algorithm of the outer wrapper is the parent's, AES-128-CFB.
func duplicate(rand io.Reader, srk *Public, name, sensitive, innerWrapKey []byte) (dup, encSeed []byte, err error) {
	sens2B := tpm2b(sensitive)
	h := sha256.New()
	h.Write(sens2B)
	h.Write(name)
	inner := append(tpm2b(h.Sum(nil)), sens2B...)
	clear(sens2B)
	if err := cfb(innerWrapKey, inner); err != nil {
		return nil, nil, err
	}

	seed := make([]byte, sha256.Size)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, nil, fmt.Errorf("tpm: random duplication seed: %w", err)
	}
	defer clear(seed)
	encSeed, err = rsa.EncryptOAEP(sha256.New(), rand, srk.Key, seed, []byte("DUPLICATE\x00"))
	if err != nil {
		return nil, nil, fmt.Errorf("tpm: encrypt duplication seed: %w", err)
	}
	outerKey := tpm2.KDFa(crypto.SHA256, seed, "STORAGE", name, nil, int(srk.Symmetric.KeyBits))
	defer clear(outerKey)
	if err := cfb(outerKey, inner); err != nil {
		return nil, nil, err
	}
	macKey := tpm2.KDFa(crypto.SHA256, seed, "INTEGRITY", nil, nil, sha256.Size*8)
	defer clear(macKey)
	m := hmac.New(sha256.New, macKey)
	m.Write(inner)
	m.Write(name)
	return append(tpm2b(m.Sum(nil)), inner...), encSeed, nil
}

// cfb encrypts b in place with AES-CFB and a zero IV, as the TPM does for
// both duplication wrappers (each key is used once).
func cfb(key, b []byte) error {
	c, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("tpm: %w", err)
	}
	//nolint:staticcheck // CFB is what TPM 2.0 specifies for these wrappers.
	cipher.NewCFBEncrypter(c, make([]byte, aes.BlockSize)).XORKeyStream(b, b)
	return nil
}
