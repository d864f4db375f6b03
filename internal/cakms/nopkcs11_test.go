//go:build !pkcs11

package cakms_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/zdps/zdps/internal/cakms"
)

// Without the pkcs11 tag, a pkcs11 URI says how to get a binary that has it.
func TestPKCS11NotBuilt(t *testing.T) {
	_, err := cakms.Open(t.Context(), "pkcs11:token=zdps?pin-value=1234", cakms.Options{})
	if !errors.Is(err, cakms.ErrNotBuilt) || !strings.Contains(err.Error(), "-tags pkcs11") || strings.Contains(err.Error(), "1234") {
		t.Fatalf("err = %v", err)
	}
}
