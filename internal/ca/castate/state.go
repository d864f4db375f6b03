package castate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"go.step.sm/crypto/keyutil"
)

// Errors of a stored state; internal/ca's sentinels of the same names
// are these.
var (
	// ErrBadKEK: the key-encryption key does not open the stored state.
	ErrBadKEK = errors.New("ca: wrong key-encryption key")
	// ErrCorruptState: the stored state opens with the KEK but is damaged or
	// was tampered with (a certificate swapped, a key not matching).
	ErrCorruptState = errors.New("ca: stored state is corrupt or was tampered with")
	// ErrKMSRequired: the stored CA's intermediate key is in a KMS and
	// none was given.
	ErrKMSRequired = errors.New("ca: the CA key is in a KMS, which was not given")
	// ErrKMSMismatch: the KMS given is not the KMS of the stored CA's key
	// (another type, or a key not matching the intermediate certificate).
	ErrKMSMismatch = errors.New("ca: the KMS given does not hold the CA key")
)

// KeyStore is what decoding needs of a KMS (internal/ca.KeyStore has it):
// its type, and the signer of a key it holds.
type KeyStore interface {
	Type() string
	Signer(ctx context.Context, ref string) (crypto.Signer, error)
}

// stateVersion changes when the layout or the sealing scheme does. Version
// 2 adds keys held in a KMS (IntermediateKeyRef, TLSKeyRef): a binary that
// knows only version 1 refuses such a state instead of misreading it.
const (
	Version1   = 1
	VersionKMS = 2
)

// state is the stored form of a CA. Certificates are public; keys are sealed.
type State struct {
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
	Previous []PreviousState `json:"previous,omitempty"`
	// Cross are intermediates issued again by a previous root (a root
	// rotation, and intermediate rotations during its overlap): with them
	// in the bundle, a verifier that trusts only the previous root accepts
	// what those intermediates issue.
	Cross [][]byte `json:"cross,omitempty"`
	// PreviousRoots are roots rotated out, still trusted (renewal, the
	// bundle) until KeepUntil. PreviousRootsSeal binds the list to the KEK:
	// a store writer cannot add a root of their own.
	PreviousRoots     []PreviousRoot `json:"previousRoots,omitempty"`
	PreviousRootsSeal []byte         `json:"previousRootsSeal,omitempty"`
	// Pending is the key of the next intermediate while its certificate is
	// signed offline (PrepareRotation, then Rotate with the certificate).
	Pending *PendingState `json:"pending,omitempty"`
	// Above, in a delegated state (version 3, delegated.go), are
	// central's intermediates between Intermediate (the gateway's CA) and
	// Root, nearest first; AboveSeal binds them to the KEK.
	Above     [][]byte `json:"above,omitempty"`
	AboveSeal []byte   `json:"aboveSeal,omitempty"`
}

// previousRoot is a root rotated out.
type PreviousRoot struct {
	Root      []byte    `json:"root"`
	KeepUntil time.Time `json:"keepUntil"`
	// Key is the previous root's key, sealed, to cross-sign intermediates
	// made during its overlap.
	Key []byte `json:"key,omitempty"`
}

// rootsDigest is what PreviousRootsSeal seals: every previous root and the
// cross certificate, in order.
func RootsDigest(s *State) []byte {
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
type PendingState struct {
	CSR    []byte `json:"csr"`
	Key    []byte `json:"key,omitempty"`
	KMS    string `json:"kms,omitempty"`
	KeyRef []byte `json:"keyRef,omitempty"`
}

// previousState is a rotated-out intermediate. Its key is sealed (or its
// KMS reference is) bound to the root and to its own certificate, so the
// entry moves unchanged from one state to the next.
type PreviousState struct {
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
	RoleCheck        = "kek-check"
	RoleRoot         = "root-key"
	RoleIntermediate = "intermediate-key"
	RoleInterRef     = "intermediate-key-ref"
	RoleTLSRef       = "tls-key-ref"
	RolePrevious     = "previous-key"
	RolePreviousRef  = "previous-key-ref"
	RolePending      = "pending-key"
	RoleRoots        = "previous-roots"
	RolePrevRootKey  = "previous-root-key"
	RolePendingRef   = "pending-key-ref"
)

// sealer encrypts the state's secrets with AES-256-GCM.
type Sealer struct {
	aead cipher.AEAD
	rand io.Reader
}

func NewSealer(kek []byte, rand io.Reader) (*Sealer, error) {
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
	return &Sealer{aead: aead, rand: rand}, nil
}

// ad binds a sealed value to its role and to both certificates of the state:
// swapping either certificate makes every key fail to open.
func ad(role string, s *State) []byte {
	if role == RoleCheck {
		return []byte("zdps/ca/v1\x00" + role)
	}
	return ADFor(role, s.Root, s.Intermediate)
}

// adFor binds a sealed value to a role, a root and one intermediate.
func ADFor(role string, rootDER, interDER []byte) []byte {
	r := sha256.Sum256(rootDER)
	i := sha256.Sum256(interDER)
	out := []byte("zdps/ca/v1\x00" + role + "\x00")
	out = append(out, r[:]...)
	return append(out, i[:]...)
}

func (z *Sealer) Seal(role string, s *State, plaintext []byte) ([]byte, error) {
	return z.SealAD(ad(role, s), plaintext)
}

func (z *Sealer) SealAD(ad, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, z.aead.NonceSize(), z.aead.NonceSize()+len(plaintext)+z.aead.Overhead())
	if _, err := io.ReadFull(z.rand, nonce); err != nil {
		return nil, fmt.Errorf("ca: nonce: %w", err)
	}
	return z.aead.Seal(nonce, nonce, plaintext, ad), nil
}

func (z *Sealer) Open(role string, s *State, sealed []byte) ([]byte, error) {
	return z.OpenAD(role, ad(role, s), sealed)
}

func (z *Sealer) OpenAD(role string, ad, sealed []byte) ([]byte, error) {
	n := z.aead.NonceSize()
	if len(sealed) < n+z.aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed %s too short", ErrCorruptState, role)
	}
	return z.aead.Open(nil, sealed[:n], sealed[n:], ad)
}

// stateKeys are the keys of a state to encode: a signer is sealed into it,
// a KMS reference is sealed in its place.
type KeySet struct {
	Root     crypto.Signer // nil: the root key is offline or was never held
	Inter    crypto.Signer // sealed when interRef is empty
	KMS      string        // KMS type of the references
	InterRef string
	TLSRef   string
	// generation and previous carry a rotation's history over.
	Generation int
	Previous   []PreviousState
	// cross and previousRoots carry a root rotation's.
	Cross         [][]byte
	PreviousRoots []PreviousRoot
}

// encodeState seals the keys and encodes the state.
func Encode(z *Sealer, now time.Time, imported bool, root, inter *x509.Certificate, k KeySet) ([]byte, error) {
	s := &State{Version: Version1, CreatedAt: now.UTC(), Imported: imported, Root: root.Raw, Intermediate: inter.Raw,
		Generation: k.Generation, Previous: k.Previous, Cross: k.Cross, PreviousRoots: k.PreviousRoots}
	var err error
	if s.KEKCheck, err = z.Seal(RoleCheck, s, nil); err != nil {
		return nil, err
	}
	if len(s.PreviousRoots) > 0 || len(s.Cross) > 0 {
		if s.PreviousRootsSeal, err = z.Seal(RoleRoots, s, RootsDigest(s)); err != nil {
			return nil, err
		}
	}
	if k.Root != nil {
		der, err := x509.MarshalPKCS8PrivateKey(k.Root)
		if err != nil {
			return nil, fmt.Errorf("ca: marshal root key: %w", err)
		}
		if s.RootKey, err = z.Seal(RoleRoot, s, der); err != nil {
			return nil, err
		}
	}
	if k.InterRef != "" {
		s.Version, s.KMS = VersionKMS, k.KMS
		if s.IntermediateKeyRef, err = z.Seal(RoleInterRef, s, []byte(k.InterRef)); err != nil {
			return nil, err
		}
		if k.TLSRef != "" {
			if s.TLSKeyRef, err = z.Seal(RoleTLSRef, s, []byte(k.TLSRef)); err != nil {
				return nil, err
			}
		}
		return json.Marshal(s)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Inter)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal intermediate key: %w", err)
	}
	if s.IntermediateKey, err = z.Seal(RoleIntermediate, s, der); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// loaded is a decoded, verified state.
type Loaded struct {
	Root, Inter *x509.Certificate
	Signer      crypto.Signer
	TLSSigner   crypto.Signer // nil unless the TLS key is in the KMS
	KMS         string        // "" when the intermediate key is sealed in the state
	Imported    bool
	HasRootKey  bool
	// What Rotate needs to move this state on.
	Blob      []byte
	InterRef  string // the KMS reference of signer, "" when sealed
	TLSRef    string
	PrevState []PreviousState
	Lineage
}

// previousGen is a rotated-out intermediate as loaded.
type PreviousGen struct {
	Inter     *x509.Certificate
	Issuer    *x509.Certificate
	Signer    crypto.Signer // nil when its KMS is not the one given
	KMS       string
	RotatedAt time.Time
	KeepUntil time.Time
}

// decodeState opens and checks a stored state: the KEK, the chain, and that
// each key matches its certificate. keys opens the keys a KMS holds; it may
// be nil when the state has none.
func Decode(ctx context.Context, z *Sealer, blob []byte, keys KeyStore) (*Loaded, error) {
	var s State
	if err := json.Unmarshal(blob, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if s.Version != Version1 && s.Version != VersionKMS && s.Version != VersionDelegated {
		return nil, fmt.Errorf("%w: unknown state version %d", ErrCorruptState, s.Version)
	}
	if _, err := z.Open(RoleCheck, &s, s.KEKCheck); err != nil {
		return nil, ErrBadKEK
	}
	root, inter, err := ParsePair(x509.ParseCertificate, s.Root, s.Intermediate, ErrCorruptState)
	if err != nil {
		return nil, err
	}
	l := &Loaded{Root: root, Inter: inter, Imported: s.Imported, HasRootKey: s.RootKey != nil, Blob: blob, Lineage: Lineage{Generation: s.Generation}, PrevState: s.Previous}
	if s.Version == VersionDelegated {
		if err := decodeDelegated(ctx, z, &s, keys, l); err != nil {
			return nil, err
		}
		return l, nil
	}
	if err := CheckChain(root, inter); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if s.Version == VersionKMS {
		if err := openKMSKeys(ctx, z, &s, keys, l); err != nil {
			return nil, err
		}
	} else {
		// A KMS given for a sealed CA is kept for a rotation into it
		// (zdps ca rotate --kms); the log says where the key is.
		if l.Signer, err = OpenKey(z, RoleIntermediate, &s, s.IntermediateKey, inter); err != nil {
			return nil, err
		}
	}
	if s.RootKey != nil {
		// Checked now so that damage shows at start, not years later at
		// the first intermediate rotation; then dropped.
		if _, err := OpenKey(z, RoleRoot, &s, s.RootKey, root); err != nil {
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
			if !l.TrustsOldRoot(pr) {
				return nil, fmt.Errorf("%w: previous intermediate %d chains to a root not among the previous roots", ErrCorruptState, i)
			}
		}
		pg, err := openPrevious(ctx, z, pr, p, keys)
		if err != nil {
			return nil, fmt.Errorf("previous intermediate %d: %w", i, err)
		}
		l.Previous = append(l.Previous, pg)
	}
	return l, nil
}

// openRoots checks and loads a root rotation's previous roots and cross
// certificate.
func openRoots(z *Sealer, s *State, root *x509.Certificate, l *Loaded) error {
	if len(s.PreviousRoots) == 0 && len(s.Cross) == 0 {
		return nil
	}
	got, err := z.Open(RoleRoots, s, s.PreviousRootsSeal)
	if err != nil || !bytes.Equal(got, RootsDigest(s)) {
		return fmt.Errorf("%w: the previous roots do not match their seal", ErrCorruptState)
	}
	for i, r := range s.PreviousRoots {
		c, err := x509.ParseCertificate(r.Root)
		if err != nil {
			return fmt.Errorf("%w: previous root %d: %w", ErrCorruptState, i, err)
		}
		l.OldRoots = append(l.OldRoots, c)
	}
	l.RootsKept = s.PreviousRoots
	for i, der := range s.Cross {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: cross certificate %d: %w", ErrCorruptState, i, err)
		}
		if !l.TrustsOldRoot(crossIssuer(c, l.OldRoots)) {
			return fmt.Errorf("%w: cross certificate %d is not issued by a previous root", ErrCorruptState, i)
		}
		l.Cross = append(l.Cross, c)
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

func (l *Loaded) TrustsOldRoot(c *x509.Certificate) bool {
	if c == nil {
		return false
	}
	for _, r := range l.OldRoots {
		if r.Equal(c) {
			return true
		}
	}
	return false
}

// openPrevious loads a rotated-out intermediate. Its key opens when it is
// sealed or in the KMS given; otherwise its CRL cannot be signed here,
// which is reported, not fatal: the current intermediate still issues.
func openPrevious(ctx context.Context, z *Sealer, root *x509.Certificate, p PreviousState, keys KeyStore) (PreviousGen, error) {
	cert, err := x509.ParseCertificate(p.Intermediate)
	if err != nil {
		return PreviousGen{}, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if err := CheckChain(root, cert); err != nil {
		return PreviousGen{}, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	pg := PreviousGen{Inter: cert, Issuer: WithSKI(cert), KMS: p.KMS, RotatedAt: p.RotatedAt, KeepUntil: p.KeepUntil}
	switch {
	case p.KeyRef != nil:
		ref, err := z.OpenAD(RolePreviousRef, ADFor(RolePreviousRef, root.Raw, cert.Raw), p.KeyRef)
		if err != nil {
			return PreviousGen{}, fmt.Errorf("%w: %s does not open", ErrCorruptState, RolePreviousRef)
		}
		if keys != nil && keys.Type() == p.KMS {
			if pg.Signer, err = keys.Signer(ctx, string(ref)); err != nil {
				return PreviousGen{}, err
			}
		}
	default:
		der, err := z.OpenAD(RolePrevious, ADFor(RolePrevious, root.Raw, cert.Raw), p.Key)
		if err != nil {
			return PreviousGen{}, fmt.Errorf("%w: %s does not open", ErrCorruptState, RolePrevious)
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		clear(der)
		if err != nil {
			return PreviousGen{}, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		pg.Signer, _ = k.(crypto.Signer)
	}
	if pg.Signer != nil {
		if err := keyutil.VerifyPair(cert.PublicKey, pg.Signer); err != nil {
			return PreviousGen{}, fmt.Errorf("%w: previous key does not match its certificate", ErrCorruptState)
		}
	}
	return pg, nil
}

// openKMSKeys opens the references of a version 2 state and the keys they
// name, and checks the intermediate's key against its certificate.
func openKMSKeys(ctx context.Context, z *Sealer, s *State, keys KeyStore, l *Loaded) error {
	if keys == nil {
		return fmt.Errorf("%w: the intermediate key is in a %s KMS; give its URI (zdps serve --ca-kms)", ErrKMSRequired, s.KMS)
	}
	if keys.Type() != s.KMS {
		return fmt.Errorf("%w: the intermediate key is in a %s KMS, the one given is %s", ErrKMSMismatch, s.KMS, keys.Type())
	}
	ref, err := z.Open(RoleInterRef, s, s.IntermediateKeyRef)
	if err != nil {
		return fmt.Errorf("%w: %s does not open", ErrCorruptState, RoleInterRef)
	}
	l.KMS, l.InterRef = s.KMS, string(ref)
	if l.Signer, err = keys.Signer(ctx, string(ref)); err != nil {
		return fmt.Errorf("ca: intermediate key in %s KMS: %w", s.KMS, err)
	}
	if err := keyutil.VerifyPair(l.Inter.PublicKey, l.Signer); err != nil {
		return fmt.Errorf("%w: the KMS key does not match the intermediate certificate", ErrKMSMismatch)
	}
	if s.TLSKeyRef != nil {
		ref, err := z.Open(RoleTLSRef, s, s.TLSKeyRef)
		if err != nil {
			return fmt.Errorf("%w: %s does not open", ErrCorruptState, RoleTLSRef)
		}
		l.TLSRef = string(ref)
		if l.TLSSigner, err = keys.Signer(ctx, string(ref)); err != nil {
			return fmt.Errorf("ca: TLS key in %s KMS: %w", s.KMS, err)
		}
	}
	return nil
}

func OpenKey(z *Sealer, role string, s *State, sealed []byte, cert *x509.Certificate) (crypto.Signer, error) {
	der, err := z.Open(role, s, sealed)
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

// lineage is what a state holds beyond its current pair: the history of
// its rotations, or the chain above a delegated CA. The decoded state
// (loaded) and the generation built from it (gen) carry the same.
type Lineage struct {
	// generation counts rotations; previous are the intermediates rotated
	// out whose certificates may still be in use.
	Generation int
	Previous   []PreviousGen
	// Root rotation: the cross certificates and the previous roots.
	Cross     []*x509.Certificate
	OldRoots  []*x509.Certificate
	RootsKept []PreviousRoot
	// delegated: an edge gateway's CA (delegated.go); above are central's
	// intermediates between inter and root; site goes into the subject of
	// every leaf (the delegated CA's name constraint asks for it).
	Delegated bool
	Above     []*x509.Certificate
	Site      string
}

// stateVersionDelegated marks a delegated state: the intermediate is the
// gateway's CA and Above holds central's intermediates. A binary that
// does not know it refuses it instead of issuing without the chain.
const VersionDelegated = 3

const RoleAbove = "above-chain"

// aboveDigest is what the roleAbove seal binds: every certificate above
// the intermediate, in order.
func AboveDigest(s *State) []byte {
	h := sha256.New()
	for _, c := range s.Above {
		d := sha256.Sum256(c)
		h.Write(d[:])
	}
	return h.Sum(nil)
}

// checkChain checks what every stored or imported CA must satisfy.
func CheckChain(root, inter *x509.Certificate) error {
	if !root.BasicConstraintsValid || !root.IsCA {
		return errors.New("root is not a CA certificate")
	}
	if !bytes.Equal(root.RawIssuer, root.RawSubject) {
		return errors.New("root is not self-issued")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("root is not self-signed: %w", err)
	}
	if bytes.Equal(root.Raw, inter.Raw) {
		return errors.New("intermediate is the root; an issuing intermediate is required")
	}
	if !inter.BasicConstraintsValid || !inter.IsCA {
		return errors.New("intermediate is not a CA certificate")
	}
	// x509.CreateRevocationList and verifiers need both bits.
	if inter.KeyUsage&x509.KeyUsageCertSign == 0 || inter.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return errors.New("intermediate lacks the keyCertSign or cRLSign key usage")
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("intermediate is not signed by the root: %w", err)
	}
	return nil
}

// parsePair parses a root and an intermediate with parse (PEM or DER);
// an error wraps bad (ErrInvalidCA, ErrCorruptState) and names which one.
func ParsePair(parse func([]byte) (*x509.Certificate, error), rootB, interB []byte, bad error) (root, inter *x509.Certificate, err error) {
	if root, err = parse(rootB); err != nil {
		return nil, nil, fmt.Errorf("%w: root: %w", bad, err)
	}
	if inter, err = parse(interB); err != nil {
		return nil, nil, fmt.Errorf("%w: intermediate: %w", bad, err)
	}
	return root, inter, nil
}

// checkDelegated checks a delegated chain: root self-signed, each
// certificate above signed by the next, the delegated CA by the first.
func CheckDelegated(root *x509.Certificate, above []*x509.Certificate, inter *x509.Certificate) error {
	if len(above) == 0 {
		return errors.New("central's intermediate is missing")
	}
	// The root and the intermediate below it as any CA state has them.
	if err := CheckChain(root, above[len(above)-1]); err != nil {
		return fmt.Errorf("central's chain: %w", err)
	}
	issuer := above[len(above)-1]
	for i := len(above) - 2; i >= 0; i-- {
		if err := above[i].CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("central intermediate %d: %w", i, err)
		}
		issuer = above[i]
	}
	if !inter.BasicConstraintsValid || !inter.IsCA {
		return errors.New("the delegated certificate is not a CA certificate")
	}
	if inter.KeyUsage&x509.KeyUsageCertSign == 0 || inter.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return errors.New("the delegated CA lacks the keyCertSign or cRLSign key usage")
	}
	if err := inter.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("the delegated CA is not signed by central's intermediate: %w", err)
	}
	return nil
}

// decodeDelegated opens the parts of a delegated state beyond the
// common ones: the chain above (bound to the KEK) and the key.
func decodeDelegated(ctx context.Context, z *Sealer, s *State, keys KeyStore, l *Loaded) error {
	if s.Version != VersionDelegated {
		return nil
	}
	got, err := z.Open(RoleAbove, s, s.AboveSeal)
	if err != nil || !bytes.Equal(got, AboveDigest(s)) {
		return fmt.Errorf("%w: the delegated chain is not the one sealed", ErrCorruptState)
	}
	for i, der := range s.Above {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: central intermediate %d: %w", ErrCorruptState, i, err)
		}
		l.Above = append(l.Above, c)
	}
	if err := CheckDelegated(l.Root, l.Above, l.Inter); err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	l.Delegated = true // Site is the caller's to read from Inter (internal/ca.SiteOf)
	if s.IntermediateKeyRef != nil {
		return openKMSKeys(ctx, z, s, keys, l)
	}
	if l.Signer, err = OpenKey(z, RoleIntermediate, s, s.IntermediateKey, l.Inter); err != nil {
		return err
	}
	return nil
}

// openPending opens the pending key of an offline rotation.
func OpenPending(ctx context.Context, z *Sealer, root *x509.Certificate, p *PendingState, keys KeyStore) (crypto.Signer, string, error) {
	if p.KeyRef != nil {
		ref, err := z.OpenAD(RolePendingRef, ADFor(RolePendingRef, root.Raw, p.CSR), p.KeyRef)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s does not open", ErrCorruptState, RolePendingRef)
		}
		if keys == nil || keys.Type() != p.KMS {
			return nil, "", fmt.Errorf("%w: the pending key is in a %s KMS: give it (--kms)", ErrKMSRequired, p.KMS)
		}
		s, err := keys.Signer(ctx, string(ref))
		return s, string(ref), err
	}
	der, err := z.OpenAD(RolePending, ADFor(RolePending, root.Raw, p.CSR), p.Key)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s does not open", ErrCorruptState, RolePending)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, "", fmt.Errorf("%w: pending key", ErrCorruptState)
	}
	return s, "", nil
}

// withSKI is cert, or a copy of it with a SubjectKeyId when it has none.
func WithSKI(cert *x509.Certificate) *x509.Certificate {
	if len(cert.SubjectKeyId) > 0 {
		return cert
	}
	cp := *cert
	cp.SubjectKeyId = KeyID(cert.PublicKey)
	return &cp
}

// keyID is the SubjectKeyIdentifier of pub: the SHA-256 of the
// subjectPublicKey bits truncated to 160 bits (RFC 7093 method 1), the
// method Go itself uses for CA certificates.
func KeyID(pub crypto.PublicKey) []byte {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil
	}
	h := sha256.Sum256(info.PublicKey.Bytes)
	return h[:20]
}

// IntermediateTemplate is every issuing intermediate zdps signs: created
// with the CA, or later with an offline root (SignIntermediate).
func IntermediateTemplate(serial *big.Int, subject pkix.Name, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// 1: it signs the delegated site CAs of edge gateways (path
		// length 0 themselves) besides device leaves.
		MaxPathLen: 1,
		// Verifiers (Go, OpenSSL) nest EKUs: this limits anything under the
		// intermediate to device and server TLS, whatever a leaf claims.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
}

// RandomSerial returns a positive, non-zero 128-bit serial: far above the
// 64 random bits the CA/Browser Forum asks for, so collisions and prediction
// are out of reach without any record of issued serials.
func RandomSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	for range 4 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("ca: serial: %w", err)
		}
		if s := new(big.Int).SetBytes(b); s.Sign() > 0 {
			return s, nil
		}
	}
	return nil, errors.New("ca: serial: random source returned only zeros")
}

// MinTime is the earlier of a and b.
func MinTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// SerialOf is the serial of a DER certificate in zdps's hex form.
func SerialOf(der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%032x", c.SerialNumber)
}
