package device

import (
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/zdps/zdps/pkg/device/devicetpm"
)

// Persistent handles the Azure device SDKs use, and so does TPM
// (package devicetpm).
const (
	EKHandle          = devicetpm.EKHandle
	SRKHandle         = devicetpm.SRKHandle
	IdentityKeyHandle = devicetpm.IdentityKeyHandle
	// EKCertificateIndex is the NV index where TPM manufacturers store the
	// RSA 2048 EK certificate (TCG EK Credential Profile).
	EKCertificateIndex = devicetpm.EKCertificateIndex
)

// DefaultTPMPath is the kernel's TPM resource manager.
const DefaultTPMPath = devicetpm.DefaultPath

var (
	// ErrTPM is wrapped by every failure of a TPM command.
	ErrTPM = devicetpm.ErrTPM
	// ErrNoEKCertificate: the TPM holds no EK certificate at
	// EKCertificateIndex (simulators and some firmware TPMs).
	ErrNoEKCertificate = devicetpm.ErrNoEKCertificate
)

// TPMSecurity is what a TPM registration needs from the device's TPM: the
// public endorsement and storage root keys (TPM2B_PUBLIC), importing the
// authenticationKey blobs of the service, and HMAC with the imported key.
// *TPM implements it over go-tpm; tests may fake it.
type TPMSecurity interface {
	EndorsementKey() []byte
	StorageRootKey() []byte
	// ActivateIdentityKey runs ActivateCredential and Import for blob and
	// persists the key it carries, replacing any earlier one.
	ActivateIdentityKey(blob []byte) error
	// SignWithIdentity is HMAC-SHA256 with the imported key.
	SignWithIdentity(data []byte) ([]byte, error)
}

// TPM is a device TPM driven the way the Azure device SDKs drive it
// (devicetpm.TPM).
type TPM = devicetpm.TPM

var _ TPMSecurity = (*TPM)(nil)

// OpenTPM opens the TPM device at path (DefaultTPMPath when empty) and
// prepares it with NewTPM. Close it when done.
func OpenTPM(path string) (*TPM, error) { return devicetpm.Open(path) }

// NewTPM reads the EK and SRK at their persistent handles, creating and
// persisting them from the TCG default RSA-2048 templates when absent (this
// needs empty endorsement and owner authorisation, as the Azure SDKs
// assume). It does not close t.
func NewTPM(t transport.TPM) (*TPM, error) { return devicetpm.New(t) }
