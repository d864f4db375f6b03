package tpm_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/attestation/tpm"
)

// FuzzParsePublic: no input panics; a parsed key marshals back to the
// input exactly (round trip); every refusal wraps a sentinel.
func FuzzParsePublic(f *testing.F) {
	k, _ := keys(f)
	f.Add(tpm.EKTemplatePublic(k))
	f.Add(tpm.MarshalRSAPublic(k, tpm.SRKAttributes, nil))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := tpm.ParsePublic(b)
		if err != nil {
			if !errors.Is(err, tpm.ErrMalformed) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatal("round trip differs")
		}
		if len(p.Name()) != 34 {
			t.Fatal("name is not SHA-256")
		}
		ekErr, srkErr := p.CheckEK(), p.CheckSRK()
		if ekErr != nil && !errors.Is(ekErr, tpm.ErrEndorsementKey) || srkErr != nil && !errors.Is(srkErr, tpm.ErrStorageRootKey) {
			t.Fatalf("check errors without sentinel: %v, %v", ekErr, srkErr)
		}
	})
}

// FuzzEKCertificate: neither a registration payload nor raw certificate
// bytes panic the EK certificate checks a device's payload reaches; every
// refusal wraps ErrEKCertificate.
func FuzzEKCertificate(f *testing.F) {
	k, _ := keys(f)
	ek, _ := tpm.ParseEK(tpm.EKTemplatePublic(k))
	good, roots := ekCert(f, ek, time.Now().Add(time.Hour))
	f.Add([]byte(`{"tpmEkCertificate":"` + base64.StdEncoding.EncodeToString(good) + `","model":"x"}`))
	f.Add([]byte(`{"tpmEkCertificate":1}`))
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, der := range [][]byte{tpm.EKCertificateFromPayload(b), b} {
			if err := tpm.VerifyEKCertificate(der, ek, tpm.EKVerifyOptions{Roots: roots}); err != nil && !errors.Is(err, tpm.ErrEKCertificate) {
				t.Fatalf("VerifyEKCertificate: error without sentinel: %v", err)
			}
			if err := tpm.CheckEKCertificate(der, ek); err != nil && !errors.Is(err, tpm.ErrEKCertificate) {
				t.Fatalf("CheckEKCertificate: error without sentinel: %v", err)
			}
		}
	})
}
