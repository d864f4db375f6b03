package ca

import (
	"bytes"
	"context"
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

// stateVersion changes when the layout or the sealing scheme does. Version
// 2 adds keys held in a KMS (IntermediateKeyRef, TLSKeyRef): a binary that
// knows only version 1 refuses such a state instead of misreading it.
const (
	stateVersion    = 1
	stateVersionKMS = 2
)

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
	IntermediateKey []byte `json:"intermediateKey,omitempty"`
	// KMS is the type of the KMS holding the keys below (for messages;
	// the references themselves are sealed, so a store writer cannot point
	// zdps at another key).
	KMS string `json:"kms,omitempty"`
	// IntermediateKeyRef, when set, is the sealed KMS reference of the
	// intermediate's key, which never leaves the KMS; IntermediateKey is
	// then absent.
	IntermediateKeyRef []byte `json:"intermediateKeyRef,omitempty"`
	// TLSKeyRef is the sealed KMS reference of zdps's own TLS server key.
	TLSKeyRef []byte `json:"tlsKeyRef,omitempty"`

	// Generation counts rotations (zdps ca rotate); replicas reload the
	// state when it changes.
	Generation int `json:"generation,omitempty"`
	// Previous are intermediates rotated out, kept (in the bundle, their
	// keys to sign their CRL) until KeepUntil, when the last certificate
	// they issued has expired.
	Previous []previousState `json:"previous,omitempty"`
	// Cross are intermediates issued again by a previous root (a root
	// rotation, and intermediate rotations during its overlap): with them
	// in the bundle, a verifier that trusts only the previous root accepts
	// what those intermediates issue.
	Cross [][]byte `json:"cross,omitempty"`
	// PreviousRoots are roots rotated out, still trusted (renewal, the
	// bundle) until KeepUntil. PreviousRootsSeal binds the list to the KEK:
	// a store writer cannot add a root of their own.
	PreviousRoots     []previousRoot `json:"previousRoots,omitempty"`
	PreviousRootsSeal []byte         `json:"previousRootsSeal,omitempty"`
	// Pending is the key of the next intermediate while its certificate is
	// signed offline (PrepareRotation, then Rotate with the certificate).
	Pending *pendingState `json:"pending,omitempty"`
	// Above, in a delegated state (version 3, delegated.go), are
	// central's intermediates between Intermediate (the gateway's CA) and
	// Root, nearest first; AboveSeal binds them to the KEK.
	Above     [][]byte `json:"above,omitempty"`
	AboveSeal []byte   `json:"aboveSeal,omitempty"`
}

// previousRoot is a root rotated out.
type previousRoot struct {
	Root      []byte    `json:"root"`
	KeepUntil time.Time `json:"keepUntil"`
	// Key is the previous root's key, sealed, to cross-sign intermediates
	// made during its overlap.
	Key []byte `json:"key,omitempty"`
}

// rootsDigest is what PreviousRootsSeal seals: every previous root and the
// cross certificate, in order.
func rootsDigest(s *state) []byte {
	h := sha256.New()
	for _, r := range s.PreviousRoots {
		d := sha256.Sum256(r.Root)
		h.Write(d[:])
		h.Write([]byte(r.KeepUntil.UTC().Format(time.RFC3339Nano)))
	}
	for _, c := range s.Cross {
		d := sha256.Sum256(c)
		h.Write(d[:])
	}
	return h.Sum(nil)
}

// pendingState is a next intermediate's key and CSR. Its key (or KMS
// reference) is sealed bound to the root and the CSR.
type pendingState struct {
	CSR    []byte `json:"csr"`
	Key    []byte `json:"key,omitempty"`
	KMS    string `json:"kms,omitempty"`
	KeyRef []byte `json:"keyRef,omitempty"`
}

// previousState is a rotated-out intermediate. Its key is sealed (or its
// KMS reference is) bound to the root and to its own certificate, so the
// entry moves unchanged from one state to the next.
type previousState struct {
	Intermediate []byte    `json:"intermediate"`
	Key          []byte    `json:"key,omitempty"`
	KMS          string    `json:"kms,omitempty"`
	KeyRef       []byte    `json:"keyRef,omitempty"`
	RotatedAt    time.Time `json:"rotatedAt"`
	KeepUntil    time.Time `json:"keepUntil"`
	// Root is the root this intermediate chains to when a root rotation
	// replaced it; empty: the state's root.
	Root []byte `json:"root,omitempty"`
}

// Key roles, part of the additional data of each sealed value.
const (
	roleCheck        = "kek-check"
	roleRoot         = "root-key"
	roleIntermediate = "intermediate-key"
	roleInterRef     = "intermediate-key-ref"
	roleTLSRef       = "tls-key-ref"
	rolePrevious     = "previous-key"
	rolePreviousRef  = "previous-key-ref"
	rolePending      = "pending-key"
	roleRoots        = "previous-roots"
	rolePrevRootKey  = "previous-root-key"
	rolePendingRef   = "pending-key-ref"
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
	return adFor(role, s.Root, s.Intermediate)
}

// adFor binds a sealed value to a role, a root and one intermediate.
func adFor(role string, rootDER, interDER []byte) []byte {
	r := sha256.Sum256(rootDER)
	i := sha256.Sum256(interDER)
	out := []byte("zdps/ca/v1\x00" + role + "\x00")
	out = append(out, r[:]...)
	return append(out, i[:]...)
}

func (z *sealer) seal(role string, s *state, plaintext []byte) ([]byte, error) {
	return z.sealAD(ad(role, s), plaintext)
}

func (z *sealer) sealAD(ad, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, z.aead.NonceSize(), z.aead.NonceSize()+len(plaintext)+z.aead.Overhead())
	if _, err := io.ReadFull(z.rand, nonce); err != nil {
		return nil, fmt.Errorf("ca: nonce: %w", err)
	}
	return z.aead.Seal(nonce, nonce, plaintext, ad), nil
}

func (z *sealer) open(role string, s *state, sealed []byte) ([]byte, error) {
	return z.openAD(role, ad(role, s), sealed)
}

func (z *sealer) openAD(role string, ad, sealed []byte) ([]byte, error) {
	n := z.aead.NonceSize()
	if len(sealed) < n+z.aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed %s too short", ErrCorruptState, role)
	}
	return z.aead.Open(nil, sealed[:n], sealed[n:], ad)
}

// stateKeys are the keys of a state to encode: a signer is sealed into it,
// a KMS reference is sealed in its place.
type stateKeys struct {
	root     crypto.Signer // nil: the root key is offline or was never held
	inter    crypto.Signer // sealed when interRef is empty
	kms      string        // KMS type of the references
	interRef string
	tlsRef   string
	// generation and previous carry a rotation's history over.
	generation int
	previous   []previousState
	// cross and previousRoots carry a root rotation's.
	cross         [][]byte
	previousRoots []previousRoot
}

// encodeState seals the keys and encodes the state.
func encodeState(z *sealer, now time.Time, imported bool, root, inter *x509.Certificate, k stateKeys) ([]byte, error) {
	s := &state{Version: stateVersion, CreatedAt: now.UTC(), Imported: imported, Root: root.Raw, Intermediate: inter.Raw,
		Generation: k.generation, Previous: k.previous, Cross: k.cross, PreviousRoots: k.previousRoots}
	var err error
	if s.KEKCheck, err = z.seal(roleCheck, s, nil); err != nil {
		return nil, err
	}
	if len(s.PreviousRoots) > 0 || len(s.Cross) > 0 {
		if s.PreviousRootsSeal, err = z.seal(roleRoots, s, rootsDigest(s)); err != nil {
			return nil, err
		}
	}
	if k.root != nil {
		der, err := x509.MarshalPKCS8PrivateKey(k.root)
		if err != nil {
			return nil, fmt.Errorf("ca: marshal root key: %w", err)
		}
		if s.RootKey, err = z.seal(roleRoot, s, der); err != nil {
			return nil, err
		}
	}
	if k.interRef != "" {
		s.Version, s.KMS = stateVersionKMS, k.kms
		if s.IntermediateKeyRef, err = z.seal(roleInterRef, s, []byte(k.interRef)); err != nil {
			return nil, err
		}
		if k.tlsRef != "" {
			if s.TLSKeyRef, err = z.seal(roleTLSRef, s, []byte(k.tlsRef)); err != nil {
				return nil, err
			}
		}
		return json.Marshal(s)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.inter)
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
	tlsSigner   crypto.Signer // nil unless the TLS key is in the KMS
	kms         string        // "" when the intermediate key is sealed in the state
	imported    bool
	hasRootKey  bool
	// What Rotate needs to move this state on.
	blob      []byte
	interRef  string // the KMS reference of signer, "" when sealed
	tlsRef    string
	prevState []previousState
	lineage
}

// previousGen is a rotated-out intermediate as loaded.
type previousGen struct {
	inter     *x509.Certificate
	issuer    *x509.Certificate
	signer    crypto.Signer // nil when its KMS is not the one given
	kms       string
	rotatedAt time.Time
	keepUntil time.Time
}

// decodeState opens and checks a stored state: the KEK, the chain, and that
// each key matches its certificate. keys opens the keys a KMS holds; it may
// be nil when the state has none.
func decodeState(ctx context.Context, z *sealer, blob []byte, keys KeyStore) (*loaded, error) {
	var s state
	if err := json.Unmarshal(blob, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if s.Version != stateVersion && s.Version != stateVersionKMS && s.Version != stateVersionDelegated {
		return nil, fmt.Errorf("%w: unknown state version %d", ErrCorruptState, s.Version)
	}
	if _, err := z.open(roleCheck, &s, s.KEKCheck); err != nil {
		return nil, ErrBadKEK
	}
	root, inter, err := parsePair(x509.ParseCertificate, s.Root, s.Intermediate, ErrCorruptState)
	if err != nil {
		return nil, err
	}
	l := &loaded{root: root, inter: inter, imported: s.Imported, hasRootKey: s.RootKey != nil, blob: blob, lineage: lineage{generation: s.Generation}, prevState: s.Previous}
	if s.Version == stateVersionDelegated {
		if err := decodeDelegated(ctx, z, &s, keys, l); err != nil {
			return nil, err
		}
		return l, nil
	}
	if err := checkChain(root, inter); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if s.Version == stateVersionKMS {
		if err := openKMSKeys(ctx, z, &s, keys, l); err != nil {
			return nil, err
		}
	} else {
		// A KMS given for a sealed CA is kept for a rotation into it
		// (zdps ca rotate --kms); the log says where the key is.
		if l.signer, err = openKey(z, roleIntermediate, &s, s.IntermediateKey, inter); err != nil {
			return nil, err
		}
	}
	if s.RootKey != nil {
		// Checked now so that damage shows at start, not years later at
		// the first intermediate rotation; then dropped.
		if _, err := openKey(z, roleRoot, &s, s.RootKey, root); err != nil {
			return nil, err
		}
	}
	if err := openRoots(z, &s, root, l); err != nil {
		return nil, err
	}
	for i, p := range s.Previous {
		pr := root
		if p.Root != nil {
			if pr, err = x509.ParseCertificate(p.Root); err != nil {
				return nil, fmt.Errorf("%w: previous intermediate %d's root: %w", ErrCorruptState, i, err)
			}
			if !l.trustsOldRoot(pr) {
				return nil, fmt.Errorf("%w: previous intermediate %d chains to a root not among the previous roots", ErrCorruptState, i)
			}
		}
		pg, err := openPrevious(ctx, z, pr, p, keys)
		if err != nil {
			return nil, fmt.Errorf("previous intermediate %d: %w", i, err)
		}
		l.previous = append(l.previous, pg)
	}
	return l, nil
}

// openRoots checks and loads a root rotation's previous roots and cross
// certificate.
func openRoots(z *sealer, s *state, root *x509.Certificate, l *loaded) error {
	if len(s.PreviousRoots) == 0 && len(s.Cross) == 0 {
		return nil
	}
	got, err := z.open(roleRoots, s, s.PreviousRootsSeal)
	if err != nil || !bytes.Equal(got, rootsDigest(s)) {
		return fmt.Errorf("%w: the previous roots do not match their seal", ErrCorruptState)
	}
	for i, r := range s.PreviousRoots {
		c, err := x509.ParseCertificate(r.Root)
		if err != nil {
			return fmt.Errorf("%w: previous root %d: %w", ErrCorruptState, i, err)
		}
		l.oldRoots = append(l.oldRoots, c)
	}
	l.rootsKept = s.PreviousRoots
	for i, der := range s.Cross {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: cross certificate %d: %w", ErrCorruptState, i, err)
		}
		if !l.trustsOldRoot(crossIssuer(c, l.oldRoots)) {
			return fmt.Errorf("%w: cross certificate %d is not issued by a previous root", ErrCorruptState, i)
		}
		l.cross = append(l.cross, c)
	}
	return nil
}

// crossIssuer is the root among roots that signed cross, or nil.
func crossIssuer(cross *x509.Certificate, roots []*x509.Certificate) *x509.Certificate {
	for _, r := range roots {
		if cross.CheckSignatureFrom(r) == nil {
			return r
		}
	}
	return nil
}

func (l *loaded) trustsOldRoot(c *x509.Certificate) bool {
	if c == nil {
		return false
	}
	for _, r := range l.oldRoots {
		if r.Equal(c) {
			return true
		}
	}
	return false
}

// openPrevious loads a rotated-out intermediate. Its key opens when it is
// sealed or in the KMS given; otherwise its CRL cannot be signed here,
// which is reported, not fatal: the current intermediate still issues.
func openPrevious(ctx context.Context, z *sealer, root *x509.Certificate, p previousState, keys KeyStore) (previousGen, error) {
	cert, err := x509.ParseCertificate(p.Intermediate)
	if err != nil {
		return previousGen{}, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if err := checkChain(root, cert); err != nil {
		return previousGen{}, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	pg := previousGen{inter: cert, issuer: withSKI(cert), kms: p.KMS, rotatedAt: p.RotatedAt, keepUntil: p.KeepUntil}
	switch {
	case p.KeyRef != nil:
		ref, err := z.openAD(rolePreviousRef, adFor(rolePreviousRef, root.Raw, cert.Raw), p.KeyRef)
		if err != nil {
			return previousGen{}, fmt.Errorf("%w: %s does not open", ErrCorruptState, rolePreviousRef)
		}
		if keys != nil && keys.Type() == p.KMS {
			if pg.signer, err = keys.Signer(ctx, string(ref)); err != nil {
				return previousGen{}, err
			}
		}
	default:
		der, err := z.openAD(rolePrevious, adFor(rolePrevious, root.Raw, cert.Raw), p.Key)
		if err != nil {
			return previousGen{}, fmt.Errorf("%w: %s does not open", ErrCorruptState, rolePrevious)
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		clear(der)
		if err != nil {
			return previousGen{}, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		pg.signer, _ = k.(crypto.Signer)
	}
	if pg.signer != nil {
		if err := keyutil.VerifyPair(cert.PublicKey, pg.signer); err != nil {
			return previousGen{}, fmt.Errorf("%w: previous key does not match its certificate", ErrCorruptState)
		}
	}
	return pg, nil
}

// openKMSKeys opens the references of a version 2 state and the keys they
// name, and checks the intermediate's key against its certificate.
func openKMSKeys(ctx context.Context, z *sealer, s *state, keys KeyStore, l *loaded) error {
	if keys == nil {
		return fmt.Errorf("%w: the intermediate key is in a %s KMS; give its URI (zdps serve --ca-kms)", ErrKMSRequired, s.KMS)
	}
	if keys.Type() != s.KMS {
		return fmt.Errorf("%w: the intermediate key is in a %s KMS, the one given is %s", ErrKMSMismatch, s.KMS, keys.Type())
	}
	ref, err := z.open(roleInterRef, s, s.IntermediateKeyRef)
	if err != nil {
		return fmt.Errorf("%w: %s does not open", ErrCorruptState, roleInterRef)
	}
	l.kms, l.interRef = s.KMS, string(ref)
	if l.signer, err = keys.Signer(ctx, string(ref)); err != nil {
		return fmt.Errorf("ca: intermediate key in %s KMS: %w", s.KMS, err)
	}
	if err := keyutil.VerifyPair(l.inter.PublicKey, l.signer); err != nil {
		return fmt.Errorf("%w: the KMS key does not match the intermediate certificate", ErrKMSMismatch)
	}
	if s.TLSKeyRef != nil {
		ref, err := z.open(roleTLSRef, s, s.TLSKeyRef)
		if err != nil {
			return fmt.Errorf("%w: %s does not open", ErrCorruptState, roleTLSRef)
		}
		l.tlsRef = string(ref)
		if l.tlsSigner, err = keys.Signer(ctx, string(ref)); err != nil {
			return fmt.Errorf("ca: TLS key in %s KMS: %w", s.KMS, err)
		}
	}
	return nil
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
