package ca

import (
	"errors"

	"github.com/zdps/zdps/internal/ca/castate"
)

// Sentinel errors. Every error the package returns that a caller may act on
// wraps one of them.
var (
	// ErrNoState: Storage.Load found no CA state (first start).
	ErrNoState = errors.New("ca: no state stored")
	// ErrStateExists: Storage.Create found a state already there (another
	// replica won the race, or an import over an existing CA).
	ErrStateExists = errors.New("ca: state already exists")
	// ErrBadKEK: the key-encryption key does not open the stored state.
	ErrBadKEK = castate.ErrBadKEK
	// ErrCorruptState: the stored state opens with the KEK but is damaged or
	// was tampered with (a certificate swapped, a key not matching).
	ErrCorruptState = castate.ErrCorruptState
	// ErrInvalidConfig: Config is missing something or holds a bad value.
	ErrInvalidConfig = errors.New("ca: invalid configuration")
	// ErrInvalidCA: a CA given to Import is unusable.
	ErrInvalidCA = errors.New("ca: invalid CA to import")
	// ErrKMSRequired: the stored CA's intermediate key is in a KMS and
	// Config.KMS is nil.
	ErrKMSRequired = castate.ErrKMSRequired
	// ErrKMSMismatch: Config.KMS is not the KMS of the stored CA's key (another
	// type, or a key not matching the intermediate certificate).
	ErrKMSMismatch = castate.ErrKMSMismatch
	// ErrCAExpired: the intermediate is not valid now, so nothing can be issued.
	ErrCAExpired = errors.New("ca: intermediate certificate is not valid now")

	// ErrCSRMalformed: the CSR is empty, too large or not DER PKCS#10.
	ErrCSRMalformed = errors.New("ca: malformed CSR")
	// ErrCSRSignature: the CSR's self-signature does not verify or uses a
	// broken algorithm.
	ErrCSRSignature = errors.New("ca: bad CSR signature")
	// ErrCSRKey: the CSR's public key is of an unsupported type or too weak.
	ErrCSRKey = errors.New("ca: unsupported or weak CSR key")
	// ErrCSRSubject: the CSR's common name is not the registration ID.
	ErrCSRSubject = errors.New("ca: CSR common name does not match the registration ID")

	// ErrInvalidPolicy: a LeafPolicy is incomplete (a caller bug, not device input).
	ErrInvalidPolicy = errors.New("ca: invalid leaf policy")
	// ErrInvalidHost: a host given to ServerCertificate is empty or malformed.
	ErrInvalidHost = errors.New("ca: invalid host name")
	// ErrInvalidRevocation: a Revoked entry has a bad serial or reason.
	ErrInvalidRevocation = errors.New("ca: invalid revocation entry")
)
