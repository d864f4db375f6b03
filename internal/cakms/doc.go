// Package cakms opens the CA's signing keys by KMS URI through smallstep's
// go.step.sm/crypto/kms, and adapts it to ca.KeyStore: keys are created
// inside the KMS and only a reference to each leaves it.
//
// Backends are registered by import. tpmkms (a TPM 2.0: /dev/tpmrm0, or
// swtpm's socket) is pure Go and always built. pkcs11 (any PKCS#11 HSM,
// SoftHSM2 in the tests) needs cgo and is built with the pkcs11 build tag
// (`make build` does it when a C compiler is there). The cloud KMSes
// (azurekms, awskms, cloudkms) are pure Go but built only with their tags of
// the same names: their SDKs add 3 to 10 MB each to the binary and dozens
// of modules, and nothing here can reach them, so they are compile-tested
// (and their key names unit-tested) only. A URI of a backend this binary
// lacks fails with ErrNotBuilt, naming the tag.
//
// softkms, the default, is not this package: a CA without a KMS seals its
// keys in the store (internal/ca).
package cakms
