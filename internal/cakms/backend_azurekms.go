//go:build azurekms

package cakms

// Azure Key Vault (azure-sdk-for-go azkeys, azidentity): its SDK adds megabytes and dozens of
// modules to the binary, and nothing here can reach the cloud to test it, so
// it is built only with the azurekms tag (README, CA keys in an HSM, a KMS or a TPM).
import _ "go.step.sm/crypto/kms/azurekms"
