package tpm

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
)

// TPM 2.0 algorithm identifiers (Part 2, TPM_ALG_ID) this package uses.
const (
	AlgRSA       uint16 = 0x0001
	AlgSHA256    uint16 = 0x000B
	AlgHMAC      uint16 = 0x0005
	AlgAES       uint16 = 0x0006
	AlgKeyedHash uint16 = 0x0008
	AlgNull      uint16 = 0x0010
	AlgCFB       uint16 = 0x0043
)

// Object attributes (Part 2, TPMA_OBJECT).
const (
	AttrFixedTPM            uint32 = 1 << 1
	AttrSTClear             uint32 = 1 << 2
	AttrFixedParent         uint32 = 1 << 4
	AttrSensitiveDataOrigin uint32 = 1 << 5
	AttrUserWithAuth        uint32 = 1 << 6
	AttrAdminWithPolicy     uint32 = 1 << 7
	AttrNoDA                uint32 = 1 << 10
	AttrEncryptedDup        uint32 = 1 << 11
	AttrRestricted          uint32 = 1 << 16
	AttrDecrypt             uint32 = 1 << 17
	AttrSign                uint32 = 1 << 18
)

// EKAttributes are the object attributes of the TCG default EK template:
// fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted,
// decrypt.
const EKAttributes uint32 = 0x000300B2

// EKAuthPolicy is the authPolicy of the TCG default EK template:
// TPM2_PolicySecret(TPM_RH_ENDORSEMENT) under SHA-256.
var EKAuthPolicy = []byte{
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
	0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
}

// MaxPublicSize bounds the TPM2B_PUBLIC this package parses; an RSA-2048
// public area is about 310 bytes, the TPM's own limit is below 1 KiB.
const MaxPublicSize = 1024

// SymDef is a TPMT_SYM_DEF_OBJECT.
type SymDef struct {
	Alg     uint16
	KeyBits uint16
	Mode    uint16
}

// Public is a parsed RSA TPMT_PUBLIC. It is a value type: parsing checks
// only the structure (ParsePublic); CheckEK and CheckSRK decide whether it
// is acceptable as an endorsement or storage root key.
type Public struct {
	// Raw is the TPMT_PUBLIC exactly as received (the contents of the
	// TPM2B_PUBLIC); the Name is computed over it.
	Raw        []byte
	Type       uint16
	NameAlg    uint16
	Attributes uint32
	AuthPolicy []byte
	Symmetric  SymDef
	// Scheme is the TPMT_RSA_SCHEME algorithm (AlgNull for storage keys
	// and EKs); SchemeHash its hash when it has one.
	Scheme     uint16
	SchemeHash uint16
	KeyBits    uint16
	// Key is the RSA public key (exponent 0 on the wire is 65537).
	Key *rsa.PublicKey
}

// reader is a bounds-checked big-endian reader; every method reports
// failure through ok instead of panicking.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) u16() uint16 {
	if !r.ok || len(r.b) < 2 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if !r.ok || len(r.b) < 4 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// sized reads a TPM2B: a 16-bit size and that many bytes.
func (r *reader) sized() []byte {
	n := int(r.u16())
	if !r.ok || len(r.b) < n {
		r.ok = false
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// ParsePublic parses a TPM2B_PUBLIC holding an RSA key. It refuses
// anything else, trailing bytes, and sizes that do not add up, with an
// error wrapping ErrMalformed. It accepts any well-formed RSA public area;
// use ParseEK or ParseSRK for device input.
func ParsePublic(tpm2b []byte) (*Public, error) {
	if len(tpm2b) > MaxPublicSize {
		return nil, fmt.Errorf("%w: TPM2B_PUBLIC longer than %d bytes", ErrMalformed, MaxPublicSize)
	}
	r := &reader{b: tpm2b, ok: true}
	body := r.sized()
	if !r.ok {
		return nil, fmt.Errorf("%w: TPM2B_PUBLIC is truncated", ErrMalformed)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the TPM2B_PUBLIC", ErrMalformed, len(r.b))
	}
	return parseTPMTPublic(body)
}

func parseTPMTPublic(body []byte) (*Public, error) {
	r := &reader{b: body, ok: true}
	p := &Public{Raw: bytes.Clone(body)}
	p.Type = r.u16()
	p.NameAlg = r.u16()
	p.Attributes = r.u32()
	p.AuthPolicy = bytes.Clone(r.sized())
	if !r.ok {
		return nil, fmt.Errorf("%w: TPMT_PUBLIC is truncated", ErrMalformed)
	}
	if p.Type != AlgRSA {
		return nil, fmt.Errorf("%w: key type 0x%04x is not RSA", ErrMalformed, p.Type)
	}
	p.Symmetric.Alg = r.u16()
	if p.Symmetric.Alg != AlgNull {
		p.Symmetric.KeyBits = r.u16()
		p.Symmetric.Mode = r.u16()
	}
	p.Scheme = r.u16()
	if p.Scheme != AlgNull {
		// Every RSA scheme's details are a single hash algorithm.
		p.SchemeHash = r.u16()
	}
	p.KeyBits = r.u16()
	exp := r.u32()
	n := r.sized()
	if !r.ok {
		return nil, fmt.Errorf("%w: TPMT_PUBLIC is truncated", ErrMalformed)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the TPMT_PUBLIC", ErrMalformed, len(r.b))
	}
	if exp == 0 {
		exp = 65537
	}
	if exp < 3 || exp%2 == 0 || exp > 1<<31-1 {
		return nil, fmt.Errorf("%w: RSA exponent is not valid", ErrMalformed)
	}
	if len(n) == 0 || n[0] == 0 {
		return nil, fmt.Errorf("%w: RSA modulus is empty or not minimal", ErrMalformed)
	}
	p.Key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	if p.Key.N.BitLen() != int(p.KeyBits) {
		return nil, fmt.Errorf("%w: RSA modulus has %d bits, keyBits says %d", ErrMalformed, p.Key.N.BitLen(), p.KeyBits)
	}
	return p, nil
}

// Marshal returns the TPM2B_PUBLIC of p (its Raw bytes with their size).
func (p *Public) Marshal() []byte { return tpm2b(p.Raw) }

// Name is the TPM Name of the object: nameAlg followed by the nameAlg
// digest of the TPMT_PUBLIC. Only SHA-256 names are computed; CheckEK and
// CheckSRK refuse other name algorithms.
func (p *Public) Name() []byte {
	d := sha256.Sum256(p.Raw)
	return append([]byte{byte(AlgSHA256 >> 8), byte(AlgSHA256)}, d[:]...)
}

// Equal reports whether p and o are the same public area.
func (p *Public) Equal(o *Public) bool {
	return p != nil && o != nil && bytes.Equal(p.Raw, o.Raw)
}

// rsa2048AES128 is the part of CheckEK and CheckSRK they share.
func (p *Public) rsa2048AES128(sentinel error) error {
	switch {
	case p.NameAlg != AlgSHA256:
		return fmt.Errorf("%w: nameAlg 0x%04x is not SHA-256", sentinel, p.NameAlg)
	case p.KeyBits != 2048:
		return fmt.Errorf("%w: RSA key of %d bits, 2048 required", sentinel, p.KeyBits)
	case p.Symmetric != SymDef{Alg: AlgAES, KeyBits: 128, Mode: AlgCFB}:
		return fmt.Errorf("%w: symmetric algorithm is not AES-128-CFB", sentinel)
	case p.Scheme != AlgNull:
		return fmt.Errorf("%w: RSA scheme 0x%04x, a storage key has none", sentinel, p.Scheme)
	}
	return nil
}

// CheckEK reports whether p is an endorsement key of the TCG default
// RSA-2048 template (what Azure DPS accepts): type RSA, nameAlg SHA-256,
// attributes exactly 0x000300B2, authPolicy PolicySecret(TPM_RH_ENDORSEMENT),
// symmetric AES-128-CFB, no scheme, 2048-bit modulus. Errors wrap
// ErrEndorsementKey.
func (p *Public) CheckEK() error {
	if err := p.rsa2048AES128(ErrEndorsementKey); err != nil {
		return err
	}
	if p.Attributes != EKAttributes {
		return fmt.Errorf("%w: attributes 0x%08x, the EK template has 0x%08x", ErrEndorsementKey, p.Attributes, EKAttributes)
	}
	if !bytes.Equal(p.AuthPolicy, EKAuthPolicy) {
		return fmt.Errorf("%w: authPolicy is not PolicySecret(TPM_RH_ENDORSEMENT)", ErrEndorsementKey)
	}
	return nil
}

// CheckSRK reports whether p can be the storage parent the HMAC key is
// duplicated to: RSA-2048, nameAlg SHA-256, restricted and decrypt set,
// sign clear, fixedTPM and fixedParent set (so the key cannot leave its
// TPM), AES-128-CFB, no scheme. Errors wrap ErrStorageRootKey.
//
// Nothing here proves that the SRK lives in the same TPM as the EK: the
// activation blob does, because MakeCredential binds the inner wrapping
// key to the SRK's Name and only the EK's TPM can release it.
func (p *Public) CheckSRK() error {
	if err := p.rsa2048AES128(ErrStorageRootKey); err != nil {
		return err
	}
	const need = AttrRestricted | AttrDecrypt | AttrFixedTPM | AttrFixedParent
	if p.Attributes&need != need || p.Attributes&AttrSign != 0 {
		return fmt.Errorf("%w: attributes 0x%08x are not those of a storage key fixed to its TPM", ErrStorageRootKey, p.Attributes)
	}
	return nil
}

// ParseEK parses a TPM2B_PUBLIC and checks it is a standard EK. Errors wrap
// ErrMalformed or ErrEndorsementKey.
func ParseEK(tpm2b []byte) (*Public, error) {
	p, err := ParsePublic(tpm2b)
	if err != nil {
		return nil, err
	}
	if err := p.CheckEK(); err != nil {
		return nil, err
	}
	return p, nil
}

// ParseSRK parses a TPM2B_PUBLIC and checks it is a storage root key.
// Errors wrap ErrMalformed or ErrStorageRootKey.
func ParseSRK(tpm2b []byte) (*Public, error) {
	p, err := ParsePublic(tpm2b)
	if err != nil {
		return nil, err
	}
	if err := p.CheckSRK(); err != nil {
		return nil, err
	}
	return p, nil
}

// tpm2b prefixes b with its 16-bit big-endian size. Callers keep b under
// 64 KiB.
func tpm2b(b []byte) []byte {
	out := make([]byte, 2, 2+len(b))
	binary.BigEndian.PutUint16(out, uint16(len(b)))
	return append(out, b...)
}

// MarshalRSAPublic builds the TPM2B_PUBLIC of an RSA key with nameAlg
// SHA-256, AES-128-CFB, no scheme and the given attributes and authPolicy.
// It is the inverse of ParsePublic for such keys, for tests and tools
// (the public area of a key held outside a TPM).
func MarshalRSAPublic(key *rsa.PublicKey, attributes uint32, authPolicy []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, AlgRSA)
	b = binary.BigEndian.AppendUint16(b, AlgSHA256)
	b = binary.BigEndian.AppendUint32(b, attributes)
	b = append(b, tpm2b(authPolicy)...)
	b = binary.BigEndian.AppendUint16(b, AlgAES)
	b = binary.BigEndian.AppendUint16(b, 128)
	b = binary.BigEndian.AppendUint16(b, AlgCFB)
	b = binary.BigEndian.AppendUint16(b, AlgNull)
	b = binary.BigEndian.AppendUint16(b, uint16(key.N.BitLen()))
	exp := uint32(key.E)
	if exp == 65537 {
		exp = 0
	}
	b = binary.BigEndian.AppendUint32(b, exp)
	b = append(b, tpm2b(key.N.Bytes())...)
	return tpm2b(b)
}

// EKTemplatePublic is MarshalRSAPublic with the EK template's attributes
// and authPolicy.
func EKTemplatePublic(key *rsa.PublicKey) []byte {
	return MarshalRSAPublic(key, EKAttributes, EKAuthPolicy)
}

// SRKAttributes are the attributes of the TCG default SRK template
// (fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, noDA,
// restricted, decrypt).
const SRKAttributes = AttrFixedTPM | AttrFixedParent | AttrSensitiveDataOrigin | AttrUserWithAuth | AttrNoDA | AttrRestricted | AttrDecrypt
