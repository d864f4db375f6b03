package tpm

import "errors"

// Sentinel errors. Every error this package returns for device input wraps
// exactly one of them (and never quotes the input); other errors are
// failures of the random source.
var (
	// ErrMalformed: the bytes are not a well-formed TPM2B_PUBLIC (or
	// activation blob): truncated, trailing data, a size that does not
	// match, an algorithm this package does not parse.
	ErrMalformed = errors.New("tpm: malformed TPM structure")
	// ErrEndorsementKey: a well-formed public area that is not an RSA-2048
	// endorsement key of the standard template (attributes 0x000300B2,
	// PolicySecret(TPM_RH_ENDORSEMENT) authPolicy, AES-128-CFB, SHA-256).
	ErrEndorsementKey = errors.New("tpm: not a standard RSA-2048 endorsement key")
	// ErrStorageRootKey: a well-formed public area that is not an RSA-2048
	// restricted decryption (storage) key bound to its TPM with AES-128-CFB
	// and SHA-256.
	ErrStorageRootKey = errors.New("tpm: not an RSA-2048 storage root key")
	// ErrEKCertificate: the EK certificate is malformed, does not chain to
	// a configured manufacturer root, is not an EK certificate, or does not
	// certify the presented endorsement key.
	ErrEKCertificate = errors.New("tpm: endorsement key certificate refused")
)
