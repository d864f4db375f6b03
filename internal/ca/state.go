package ca

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"go.step.sm/crypto/keyutil"
)

// stateVersion changes when the layout or the sealing scheme does.
const stateVersion = 1

// state is the stored form of a CA. Certificates are public; keys are sealed.
type state struct {
	Version      int       `json:"version"`
	CreatedAt    time.Time `json:"createdAt"`
	Imported     bool      `json:"imported,omitempty"`
	Root         []byte    `json:"root"`         // DER
	Intermediate []byte    `json:"intermediate"` // DER
	// KEKCheck seals nothing under its own role, so a wrong KEK is told
	// apart from a damaged or tampered key (ErrBadKEK vs ErrCorruptState).
	KEKCheck []byte `json:"kekCheck"`
	// RootKey is absent when the operator imported a CA whose root key
	// stays offline.
	RootKey         []byte `json:"rootKey,omitempty"`
	IntermediateKey []byte `json:"intermediateKey"`
}

// Key roles, part of the additional data of each sealed value.
const (
	roleCheck        = "kek-check"
	roleRoot         = "root-key"
	roleIntermediate = "intermediate-key"
)

// sealer encrypts the state's secrets with AES-256-GCM.
type sealer struct {
	aead cipher.AEAD
	rand io.Reader
}

func newSealer(kek []byte, rand io.Reader) (*sealer, error) {
	// HKDF turns a KEK of any length >= 32 into exactly one AES-256 key and
	// keeps this use of it apart from any other use the operator makes.
	k, err := hkdf.Key(sha256.New, kek, nil, "zdps ca state v1 aes-256-gcm", 32)
	if err != nil {
		return nil, fmt.Errorf("ca: derive key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return &sealer{aead: aead, rand: rand}, nil
}

// ad binds a sealed value to its role and to both certificates of the state:
// swapping either certificate makes every key fail to open.
func ad(role string, s *state) []byte {
	if role == roleCheck {
		return []byte("zdps/ca/v1\x00" + role)
	}
	r := sha256.Sum256(s.Root)
	i := sha256.Sum256(s.Intermediate)
	out := []byte("zdps/ca/v1\x00" + role + "\x00")
	out = append(out, r[:]...)
	return append(out, i[:]...)
}

func (z *sealer) seal(role string, s *state, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, z.aead.NonceSize(), z.aead.NonceSize()+len(plaintext)+z.aead.Overhead())
	if _, err := io.ReadFull(z.rand, nonce); err != nil {
		return nil, fmt.Errorf("ca: nonce: %w", err)
	}
	return z.aead.Seal(nonce, nonce, plaintext, ad(role, s)), nil
}

func (z *sealer) open(role string, s *state, sealed []byte) ([]byte, error) {
	n := z.aead.NonceSize()
	if len(sealed) < n+z.aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed %s too short", ErrCorruptState, role)
	}
	return z.aead.Open(nil, sealed[:n], sealed[n:], ad(role, s))
}

// encodeState seals the keys and encodes the state. rootKey may be nil.
func encodeState(z *sealer, now time.Time, imported bool, root, inter *x509.Certificate, rootKey, interKey crypto.Signer) ([]byte, error) {
	s := &state{Version: stateVersion, CreatedAt: now.UTC(), Imported: imported, Root: root.Raw, Intermediate: inter.Raw}
	var err error
	if s.KEKCheck, err = z.seal(roleCheck, s, nil); err != nil {
		return nil, err
	}
	if rootKey != nil {
		der, err := x509.MarshalPKCS8PrivateKey(rootKey)
		if err != nil {
			return nil, fmt.Errorf("ca: marshal root key: %w", err)
		}
		if s.RootKey, err = z.seal(roleRoot, s, der); err != nil {
			return nil, err
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal intermediate key: %w", err)
	}
	if s.IntermediateKey, err = z.seal(roleIntermediate, s, der); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// loaded is a decoded, verified state.
type loaded struct {
	root, inter *x509.Certificate
	signer      crypto.Signer
	imported    bool
	hasRootKey  bool
}

// decodeState opens and checks a stored state: the KEK, the chain, and that
// each key matches its certificate.
func decodeState(z *sealer, blob []byte) (*loaded, error) {
	var s state
	if err := json.Unmarshal(blob, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%w: unknown state version %d", ErrCorruptState, s.Version)
	}
	if _, err := z.open(roleCheck, &s, s.KEKCheck); err != nil {
		return nil, ErrBadKEK
	}
	root, err := x509.ParseCertificate(s.Root)
	if err != nil {
		return nil, fmt.Errorf("%w: root: %w", ErrCorruptState, err)
	}
	inter, err := x509.ParseCertificate(s.Intermediate)
	if err != nil {
		return nil, fmt.Errorf("%w: intermediate: %w", ErrCorruptState, err)
	}
	if err := checkChain(root, inter); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	interKey, err := openKey(z, roleIntermediate, &s, s.IntermediateKey, inter)
	if err != nil {
		return nil, err
	}
	if s.RootKey != nil {
		// Checked now so that damage shows at start, not years later at
		// the first intermediate rotation; then dropped.
		if _, err := openKey(z, roleRoot, &s, s.RootKey, root); err != nil {
			return nil, err
		}
	}
	return &loaded{root: root, inter: inter, signer: interKey, imported: s.Imported, hasRootKey: s.RootKey != nil}, nil
}

func openKey(z *sealer, role string, s *state, sealed []byte, cert *x509.Certificate) (crypto.Signer, error) {
	der, err := z.open(role, s, sealed)
	if err != nil {
		// The KEK opened the check value, so this key or a certificate
		// it is bound to was changed.
		return nil, fmt.Errorf("%w: %s does not open", ErrCorruptState, role)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptState, role, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a signing key", ErrCorruptState, role)
	}
	if err := keyutil.VerifyPair(cert.PublicKey, signer); err != nil {
		return nil, fmt.Errorf("%w: %s does not match its certificate", ErrCorruptState, role)
	}
	return signer, nil
}
