// Package devicetpm drives a device's TPM 2.0 the way the Azure device
// SDKs drive it, over go-tpm: the EK and SRK at their persistent handles,
// the key of the service's authenticationKey blob imported under the SRK
// (ActivateCredential, Import) and persisted, HMAC with it, and the
// manufacturer's EK certificate read from NV memory. Package device
// registers with it (device.TPM is this package's TPM); it exists apart
// so that the registration client is not mixed with TPM commands.
package devicetpm
