//go:build cloudkms

package cakms

// Google Cloud KMS (cloud.google.com/go/kms, gRPC): its SDK adds megabytes and dozens of
// modules to the binary, and nothing here can reach the cloud to test it, so
// it is built only with the cloudkms tag (README, CA keys in an HSM, a KMS or a TPM).
import _ "go.step.sm/crypto/kms/cloudkms"
