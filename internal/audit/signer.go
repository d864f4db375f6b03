package audit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySigner signs with an ECDSA or Ed25519 key (the CA's intermediate, in
// zdps serve) and verifies with its public key alone (zdps audit verify
// needs only the certificate).
type KeySigner struct {
	Key crypto.Signer
	Pub crypto.PublicKey
}

// Sign signs SHA-256 of msg (Ed25519: msg itself).
func (k *KeySigner) Sign(msg []byte) ([]byte, error) {
	if k.Key == nil {
		return nil, errors.New("audit: no signing key")
	}
	if _, ok := k.Key.Public().(ed25519.PublicKey); ok {
		return k.Key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	d := sha256.Sum256(msg)
	return k.Key.Sign(rand.Reader, d[:], crypto.SHA256)
}

// Verify checks sig over msg with Pub (or Key's public key).
func (k *KeySigner) Verify(msg, sig []byte) error {
	pub := k.Pub
	if pub == nil && k.Key != nil {
		pub = k.Key.Public()
	}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		if ecdsa.VerifyASN1(p, d[:], sig) {
			return nil
		}
	case *rsa.PublicKey:
		d := sha256.Sum256(msg)
		if rsa.VerifyPKCS1v15(p, crypto.SHA256, d[:], sig) == nil {
			return nil
		}
	case ed25519.PublicKey:
		if ed25519.Verify(p, msg, sig) {
			return nil
		}
	default:
		return fmt.Errorf("audit: unsupported verification key %T", pub)
	}
	return errors.New("audit: bad signature")
}

// HMACSigner signs with HMAC-SHA256 under a key that must not be in the
// store (zdps serve derives it from the key-encryption key, which seals
// the store's secrets: whoever can forge a head can also open them).
type HMACSigner struct{ Key []byte }

// NewHMACSigner derives the trail's key from a key-encryption key.
func NewHMACSigner(kek []byte) *HMACSigner {
	m := hmac.New(sha256.New, kek)
	m.Write([]byte("zdps audit trail signing key v1"))
	return &HMACSigner{Key: m.Sum(nil)}
}

// Sign is the HMAC of msg.
func (h *HMACSigner) Sign(msg []byte) ([]byte, error) {
	m := hmac.New(sha256.New, h.Key)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Verify compares in constant time.
func (h *HMACSigner) Verify(msg, sig []byte) error {
	want, _ := h.Sign(msg)
	if !hmac.Equal(want, sig) {
		return errors.New("audit: bad signature")
	}
	return nil
}
