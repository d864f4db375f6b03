// Package cakms opens the CA's signing keys by KMS URI through smallstep's
// go.step.sm/crypto/kms, and adapts it to ca.KeyStore: keys are created
// inside the KMS and only a reference to each leaves it.
//
// Backends are registered by import. tpmkms (a TPM 2.0: /dev/tpmrm0, or
// swtpm's socket) is pure Go and always built. pkcs11 (any PKCS#11 HSM,
// SoftHSM2 in the tests) needs cgo and is built with the pkcs11 build tag
// (`make build` does it when a C compiler is there). The cloud KMSes
// (azurekms, awskms, cloudkms) are not built: their SDKs add about 19 MB to
// the binary and some sixty modules, and nothing here can test them. A URI
// of a backend this binary lacks fails with ErrNotBuilt, saying how to get
// it.
//
// softkms, the default, is not this package: a CA without a KMS seals its
// keys in the store (internal/ca).
package cakms
