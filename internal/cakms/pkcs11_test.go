//go:build pkcs11

package cakms_test

import (
	"testing"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/cakms/cakmstest"
)

func TestPKCS11SoftHSM(t *testing.T) {
	for _, kt := range []ca.KeyType{ca.KeyECP256, ca.KeyECP384} {
		t.Run(string(kt), func(t *testing.T) {
			uri, _ := cakmstest.SoftHSM(t)
			checkBackend(t, uri, kt)
		})
	}
}

func init() {
	benchBackends = append(benchBackends, benchBackend{"pkcs11-softhsm2", func(t testing.TB) string { u, _ := cakmstest.SoftHSM(t); return u }})
}
