//go:build pkcs11

package zdpstest

const buildTags = "pkcs11"
