package devicetpm

import (
	"cmp"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	"github.com/zdps/zdps/pkg/dps"
)

// Persistent handles the Azure device SDKs use, and so does TPM.
const (
	EKHandle          tpm2.TPMHandle = 0x81010001
	SRKHandle         tpm2.TPMHandle = 0x81000001
	IdentityKeyHandle tpm2.TPMHandle = 0x81000100
)

// DefaultPath is the kernel's TPM resource manager.
const DefaultPath = "/dev/tpmrm0"

// ErrTPM is wrapped by every failure of a TPM command.
var ErrTPM = errors.New("device: TPM")

// TPM is a device TPM driven the way the Azure device SDKs drive it: the
// EK at EKHandle and the SRK at SRKHandle (created from the TCG default
// templates and persisted when absent), and the key the service sends
// imported under the SRK and persisted at IdentityKeyHandle. It is safe
// for concurrent use; commands are serialised.
type TPM struct {
	mu      sync.Mutex
	t       transport.TPM
	ek, srk []byte // TPM2B_PUBLIC
	ekName  tpm2.TPM2BName
	srkName tpm2.TPM2BName
	closer  func() error
}

// Open opens the TPM device at path (DefaultPath when empty) and
// prepares it with New. Close it when done.
func Open(path string) (*TPM, error) {
	if path == "" {
		path = DefaultPath
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrTPM, path, err)
	}
	d, err := New(t)
	if err != nil {
		t.Close()
		return nil, err
	}
	d.closer = t.Close
	return d, nil
}

// New reads the EK and SRK at their persistent handles, creating and
// persisting them from the TCG default RSA-2048 templates when absent (this
// needs empty endorsement and owner authorisation, as the Azure SDKs
// assume). It does not close t.
func New(t transport.TPM) (*TPM, error) {
	d := &TPM{t: t}
	var err error
	if d.ek, d.ekName, err = d.persistentPrimary(EKHandle, tpm2.TPMRHEndorsement, tpm2.RSAEKTemplate); err != nil {
		return nil, fmt.Errorf("%w: endorsement key: %w", ErrTPM, err)
	}
	if d.srk, d.srkName, err = d.persistentPrimary(SRKHandle, tpm2.TPMRHOwner, tpm2.RSASRKTemplate); err != nil {
		return nil, fmt.Errorf("%w: storage root key: %w", ErrTPM, err)
	}
	return d, nil
}

// Close closes the TPM opened by Open (nothing for New's).
func (d *TPM) Close() error {
	if d.closer == nil {
		return nil
	}
	return d.closer()
}

func (d *TPM) persistentPrimary(h tpm2.TPMHandle, hierarchy tpm2.TPMHandle, tmpl tpm2.TPMTPublic) ([]byte, tpm2.TPM2BName, error) {
	if rp, err := (tpm2.ReadPublic{ObjectHandle: h}).Execute(d.t); err == nil {
		return tpm2.Marshal(rp.OutPublic), rp.Name, nil
	}
	cp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: hierarchy, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tmpl),
	}.Execute(d.t)
	if err != nil {
		return nil, tpm2.TPM2BName{}, fmt.Errorf("CreatePrimary: %w", err)
	}
	defer (tpm2.FlushContext{FlushHandle: cp.ObjectHandle}).Execute(d.t) //nolint:errcheck // best effort
	if _, err := (tpm2.EvictControl{
		Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		ObjectHandle:     tpm2.NamedHandle{Handle: cp.ObjectHandle, Name: cp.Name},
		PersistentHandle: h,
	}).Execute(d.t); err != nil {
		return nil, tpm2.TPM2BName{}, fmt.Errorf("EvictControl: %w", err)
	}
	return tpm2.Marshal(cp.OutPublic), cp.Name, nil
}

// EndorsementKey is the EK's TPM2B_PUBLIC.
func (d *TPM) EndorsementKey() []byte { return append([]byte(nil), d.ek...) }

// StorageRootKey is the SRK's TPM2B_PUBLIC.
func (d *TPM) StorageRootKey() []byte { return append([]byte(nil), d.srk...) }

// RegistrationID is the default registration ID of this TPM
// (dps.TPMRegistrationID of the EK).
func (d *TPM) RegistrationID() string { return dps.TPMRegistrationID(d.ek) }

// ActivateIdentityKey imports the key of an authenticationKey blob:
// ActivateCredential with the EK (under a PolicySecret(endorsement)
// session) releases the inner wrapping key bound to the SRK's Name; Import
// under the SRK with that key; Load; persist at IdentityKeyHandle.
func (d *TPM) ActivateIdentityKey(blob []byte) error {
	parts, err := dps.SplitActivationBlob(blob)
	if err != nil {
		return err
	}
	idObject, err1 := unmarshalPart[tpm2.TPM2BIDObject](parts.CredentialBlob, "credential blob")
	credSeed, err2 := unmarshalPart[tpm2.TPM2BEncryptedSecret](parts.CredentialSeed, "credential seed")
	dup, err3 := unmarshalPart[tpm2.TPM2BPrivate](parts.Duplicate, "duplicate")
	dupSeed, err4 := unmarshalPart[tpm2.TPM2BEncryptedSecret](parts.DuplicateSeed, "duplicate seed")
	pub, err5 := unmarshalPart[tpm2.TPM2BPublic](parts.Public, "key public area")
	if err := cmp.Or(err1, err2, err3, err4, err5); err != nil {
		return err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	srk := tpm2.AuthHandle{Handle: SRKHandle, Name: d.srkName, Auth: tpm2.PasswordAuth(nil)}
	policy := tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(t transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
			PolicySession: h,
		}.Execute(t)
		return err
	})
	act, err := tpm2.ActivateCredential{
		ActivateHandle: srk,
		KeyHandle:      tpm2.AuthHandle{Handle: EKHandle, Name: d.ekName, Auth: policy},
		CredentialBlob: *idObject,
		Secret:         *credSeed,
	}.Execute(d.t)
	if err != nil {
		return fmt.Errorf("%w: ActivateCredential: %w", ErrTPM, err)
	}
	innerKey := act.CertInfo.Buffer
	defer clear(innerKey)
	imp, err := tpm2.Import{
		ParentHandle:  srk,
		EncryptionKey: tpm2.TPM2BData{Buffer: innerKey},
		ObjectPublic:  *pub,
		Duplicate:     *dup,
		InSymSeed:     *dupSeed,
		Symmetric: tpm2.TPMTSymDef{
			Algorithm: tpm2.TPMAlgAES,
			KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(8*len(innerKey))),
			Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
		},
	}.Execute(d.t)
	if err != nil {
		return fmt.Errorf("%w: Import: %w", ErrTPM, err)
	}
	ld, err := tpm2.Load{ParentHandle: srk, InPrivate: imp.OutPrivate, InPublic: *pub}.Execute(d.t)
	if err != nil {
		return fmt.Errorf("%w: Load: %w", ErrTPM, err)
	}
	defer (tpm2.FlushContext{FlushHandle: ld.ObjectHandle}).Execute(d.t) //nolint:errcheck // best effort
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	if rp, err := (tpm2.ReadPublic{ObjectHandle: IdentityKeyHandle}).Execute(d.t); err == nil {
		if _, err := (tpm2.EvictControl{Auth: owner, ObjectHandle: tpm2.NamedHandle{Handle: IdentityKeyHandle, Name: rp.Name}, PersistentHandle: IdentityKeyHandle}).Execute(d.t); err != nil {
			return fmt.Errorf("%w: EvictControl (remove the previous key): %w", ErrTPM, err)
		}
	}
	if _, err := (tpm2.EvictControl{Auth: owner, ObjectHandle: tpm2.NamedHandle{Handle: ld.ObjectHandle, Name: ld.Name}, PersistentHandle: IdentityKeyHandle}).Execute(d.t); err != nil {
		return fmt.Errorf("%w: EvictControl: %w", ErrTPM, err)
	}
	return nil
}

// unmarshalPart decodes one part of an activation blob; what names it in
// the error.
func unmarshalPart[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte, what string) (*T, error) {
	v, err := tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", dps.ErrMalformed, what, err)
	}
	return v, nil
}

// SignWithIdentity is TPM2_HMAC (SHA-256) of data with the key at
// IdentityKeyHandle.
func (d *TPM) SignWithIdentity(data []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rp, err := (tpm2.ReadPublic{ObjectHandle: IdentityKeyHandle}).Execute(d.t)
	if err != nil {
		return nil, fmt.Errorf("%w: no identity key (activate one first): %w", ErrTPM, err)
	}
	rsp, err := tpm2.Hmac{
		Handle:  tpm2.AuthHandle{Handle: IdentityKeyHandle, Name: rp.Name, Auth: tpm2.PasswordAuth(nil)},
		Buffer:  tpm2.TPM2BMaxBuffer{Buffer: data},
		HashAlg: tpm2.TPMAlgSHA256,
	}.Execute(d.t)
	if err != nil {
		return nil, fmt.Errorf("%w: HMAC: %w", ErrTPM, err)
	}
	return rsp.OutHMAC.Buffer, nil
}

// EKCertificateIndex is the NV index where TPM manufacturers store the
// RSA 2048 EK certificate (TCG EK Credential Profile).
const EKCertificateIndex tpm2.TPMHandle = 0x01C00002

// nvChunk bounds one TPM2_NV_Read: TPM_PT_NV_BUFFER_MAX is at least 512
// on every TPM 2.0 (most allow 1024 or more).
const nvChunk = 512

// ErrNoEKCertificate: the TPM holds no EK certificate at
// EKCertificateIndex (simulators and some firmware TPMs).
var ErrNoEKCertificate = errors.New("device: the TPM holds no EK certificate")

// EKCertificate reads the EK certificate the manufacturer stored in the
// TPM's NV memory (DER, as stored: tpm.VerifyEKCertificate accepts the
// TCG header some TPMs prepend). Send it with device.Config.TPMEKCertificate.
func (d *TPM) EKCertificate() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pub, err := tpm2.NVReadPublic{NVIndex: EKCertificateIndex}.Execute(d.t)
	if err != nil {
		return nil, ErrNoEKCertificate
	}
	info, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("%w: EK certificate index: %w", ErrTPM, err)
	}
	// Manufacturers make the index readable with its own empty
	// authorisation, or the owner's.
	var out []byte
	for _, auth := range []tpm2.TPMHandle{EKCertificateIndex, tpm2.TPMRHOwner} {
		if out, err = d.readNV(auth, pub.NVName, info.DataSize); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: read the EK certificate: %w", ErrTPM, err)
}

// readNV reads size bytes of EKCertificateIndex in chunks, authorised by
// auth with an empty password.
func (d *TPM) readNV(auth tpm2.TPMHandle, indexName tpm2.TPM2BName, size uint16) ([]byte, error) {
	out := make([]byte, 0, size)
	for off := uint16(0); off < size; {
		n := min(nvChunk, size-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: auth, Name: authName(auth, indexName), Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: EKCertificateIndex, Name: indexName},
			Size:       n,
			Offset:     off,
		}.Execute(d.t)
		if err != nil {
			return nil, err
		}
		out = append(out, rsp.Data.Buffer...)
		off += n
	}
	return out, nil
}

// authName is the name of an authorising handle: the index's own, or the
// hierarchy's (its handle).
func authName(h tpm2.TPMHandle, indexName tpm2.TPM2BName) tpm2.TPM2BName {
	if h == EKCertificateIndex {
		return indexName
	}
	return tpm2.HandleName(h)
}
