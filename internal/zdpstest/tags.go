//go:build !pkcs11

package zdpstest

// buildTags are the tags the zdps binary under test is built with: those of
// the test binary, so that `go test -tags pkcs11` (make test) runs a zdps
// that has the PKCS#11 backend.
const buildTags = ""
