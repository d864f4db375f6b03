package dps

import "slices"

// APIVersions are the api-version values zdps accepts, oldest first: those
// the Azure device and service SDKs send (docs/protocol.md#conventions).
var APIVersions = []string{"2019-03-31", "2021-06-01", "2021-10-01", "2025-07-01-preview"}

// API versions a device sends.
const (
	// DeviceAPIVersion is what the Azure SDKs send without a CSR.
	DeviceAPIVersion = "2021-10-01"
	// CSRAPIVersion is the first version with the register body's csr.
	CSRAPIVersion = "2025-07-01-preview"
)

// SupportedAPIVersion reports whether v is one of APIVersions (exactly:
// the SDKs send them as written).
func SupportedAPIVersion(v string) bool { return slices.Contains(APIVersions, v) }
