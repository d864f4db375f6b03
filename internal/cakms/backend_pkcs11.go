//go:build pkcs11

package cakms

// pkcs11 needs cgo (crypto11, miekg/pkcs11 dlopen the module): only with
// the pkcs11 tag, so that a plain `go build ./cmd/zdps` stays pure Go.
import _ "go.step.sm/crypto/kms/pkcs11"
