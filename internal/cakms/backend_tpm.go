//go:build !notpmkms

package cakms

// tpmkms is pure Go (go-tpm): always built.
import _ "go.step.sm/crypto/kms/tpmkms"
