//go:build pkcs11

package kms

import (
	"testing"

	"github.com/zdps/zdps/internal/cakms/cakmstest"
)

// TestPKCS11EndToEnd: the CA's keys in a PKCS#11 token (SoftHSM2, whose
// files live in the test's directory, outside zdps's data directory).
func TestPKCS11EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs zdps serve")
	}
	uri, _ := cakmstest.SoftHSM(t)
	kmsEndToEnd(t, uri, "pkcs11")
}
