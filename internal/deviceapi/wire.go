package deviceapi

import (
	"github.com/zdps/zdps/internal/devicewire"
)

// The answer types and their rendering are the transports' shared ones
// (internal/devicewire); the names stay for this package's callers.

// ErrBadRequest is wrapped by every decoding error of device input, the
// wire contract's own.
var ErrBadRequest = devicewire.ErrBadRequest

var badRequest = devicewire.BadRequest

type (
	// RegistrationOperationStatus is the answer of register and of the
	// operation poll.
	RegistrationOperationStatus = devicewire.RegistrationOperationStatus
	// DeviceRegistrationResult is the device's view of its registration.
	DeviceRegistrationResult = devicewire.DeviceRegistrationResult
	// TPMRegistrationResult carries the key blob of TPM attestation.
	TPMRegistrationResult = devicewire.TPMRegistrationResult
	// X509RegistrationResult says which enrollment admitted an X.509 device.
	X509RegistrationResult = devicewire.X509RegistrationResult
	// SymmetricKeyResult names the group of a symmetric-key device.
	SymmetricKeyResult = devicewire.SymmetricKeyResult
)

var (
	resultOf        = devicewire.ResultOf
	operationStatus = devicewire.OperationStatus
)
