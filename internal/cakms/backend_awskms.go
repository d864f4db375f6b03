//go:build awskms

package cakms

// AWS KMS (aws-sdk-go-v2): its SDK adds megabytes and dozens of
// modules to the binary, and nothing here can reach the cloud to test it, so
// it is built only with the awskms tag (README, CA keys in an HSM, a KMS or a TPM).
import _ "go.step.sm/crypto/kms/awskms"
