package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Prefix starts every sealed value; its "v1" names the algorithm (HKDF-SHA256
// subkey, AES-256-GCM, 96-bit random nonce).
const Prefix = "zdps:v1:"

// MinKEKSize is the shortest KEK New accepts (the AES-256 key size).
const MinKEKSize = 32

// hkdfInfo separates this use of the KEK from every other (the CA's is
// "zdps ca state v1 aes-256-gcm").
const hkdfInfo = "zdps secrets v1 aes-256-gcm"

// Errors of this package.
var (
	// ErrOpen: the value does not open under this KEK and associated data
	// (wrong KEK, altered value, or a value moved to another place).
	ErrOpen = errors.New("sealed: value does not open (wrong key-encryption key, altered, or moved)")
	// ErrFormat: the value starts with Prefix but is not a well-formed
	// sealed value.
	ErrFormat = errors.New("sealed: malformed sealed value")
	// ErrKEK: the KEK is too short.
	ErrKEK = errors.New("sealed: key-encryption key too short")
)

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
	rand io.Reader
}

// New derives the secrets key from kek (at least MinKEKSize bytes).
func New(kek []byte) (*Box, error) {
	if len(kek) < MinKEKSize {
		return nil, fmt.Errorf("%w: need %d bytes, got %d", ErrKEK, MinKEKSize, len(kek))
	}
	k, err := hkdf.Key(sha256.New, kek, nil, hkdfInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("sealed: derive key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	return &Box{aead: aead, rand: rand.Reader}, nil
}

// IsSealed reports whether s is in the sealed form (it may still fail to
// open); anything else is a legacy plaintext value.
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// Seal encrypts plaintext bound to ad and returns the stored form.
func (b *Box) Seal(plaintext []byte, ad string) (string, error) {
	ns := b.aead.NonceSize()
	buf := make([]byte, ns, ns+len(plaintext)+b.aead.Overhead())
	if _, err := io.ReadFull(b.rand, buf); err != nil {
		return "", fmt.Errorf("sealed: nonce: %w", err)
	}
	buf = b.aead.Seal(buf, buf[:ns], plaintext, []byte(ad))
	out := make([]byte, len(Prefix)+base64.StdEncoding.EncodedLen(len(buf)))
	copy(out, Prefix)
	base64.StdEncoding.Encode(out[len(Prefix):], buf)
	return string(out), nil
}

// Open decrypts a stored form sealed under ad. It fails with ErrFormat when
// stored is not a sealed value and ErrOpen when it does not authenticate.
func (b *Box) Open(stored string, ad string) ([]byte, error) {
	if !IsSealed(stored) {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrFormat, Prefix)
	}
	raw, err := base64.StdEncoding.DecodeString(stored[len(Prefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	ns := b.aead.NonceSize()
	if len(raw) < ns+b.aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrFormat, len(raw))
	}
	pt, err := b.aead.Open(raw[ns:ns], raw[:ns], raw[ns:], []byte(ad)) // in place
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
