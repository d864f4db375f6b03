package tpm_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/pkg/dps"
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsa1024 *rsa.PrivateKey
)

func keys(t testing.TB) (*rsa.PublicKey, *rsa.PublicKey) {
	keyOnce.Do(func() {
		rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsa1024, _ = rsa.GenerateKey(rand.Reader, 1024)
	})
	return &rsaKey.PublicKey, &rsa1024.PublicKey
}

func TestParseEK(t *testing.T) {
	k2048, k1024 := keys(t)
	good := tpm.EKTemplatePublic(k2048)
	withBody := func(f func(body []byte) []byte) []byte {
		body := f(bytes.Clone(good[2:]))
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
	}
	setU32 := func(at int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[at:], v); return b }
	}
	setU16 := func(at int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[at:], v); return b }
	}
	// Offsets in the TPMT_PUBLIC: type 0, nameAlg 2, attributes 4,
	// authPolicy 8 (2+32), symmetric 42 (alg, bits, mode), scheme 48,
	// keyBits 50, exponent 52, unique 56.
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"standard EK", good, nil},
		{"empty", nil, tpm.ErrMalformed},
		{"truncated", good[:len(good)-1], tpm.ErrMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), tpm.ErrMalformed},
		{"TPMT_PUBLIC without size", good[2:], tpm.ErrMalformed},
		{"ECC type", withBody(setU16(0, 0x0023)), tpm.ErrMalformed},
		{"SHA-1 nameAlg", withBody(setU16(2, 0x0004)), tpm.ErrEndorsementKey},
		{"userWithAuth set", withBody(setU32(4, tpm.EKAttributes|tpm.AttrUserWithAuth)), tpm.ErrEndorsementKey},
		{"sign set", withBody(setU32(4, tpm.EKAttributes|tpm.AttrSign)), tpm.ErrEndorsementKey},
		{"other authPolicy", withBody(func(b []byte) []byte { b[10] ^= 1; return b }), tpm.ErrEndorsementKey},
		{"AES-256", withBody(setU16(44, 256)), tpm.ErrEndorsementKey},
		{"keyBits lie", withBody(setU16(50, 4096)), tpm.ErrMalformed},
		{"even exponent", withBody(setU32(52, 4)), tpm.ErrMalformed},
		{"RSA-1024", tpm.EKTemplatePublic(k1024), tpm.ErrEndorsementKey},
		{"SRK as EK", tpm.MarshalRSAPublic(k2048, tpm.SRKAttributes, nil), tpm.ErrEndorsementKey},
		{"oversized", make([]byte, tpm.MaxPublicSize+1), tpm.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tpm.ParseEK(tt.in)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("ParseEK = %v, want %v", err, tt.want)
			}
			if err == nil && !bytes.Equal(p.Marshal(), tt.in) {
				t.Fatal("Marshal does not give back the input")
			}
		})
	}
}

func TestParseSRK(t *testing.T) {
	k2048, _ := keys(t)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"default SRK", tpm.MarshalRSAPublic(k2048, tpm.SRKAttributes, nil), nil},
		{"EK as SRK is a storage key too", tpm.EKTemplatePublic(k2048), nil},
		{"not restricted", tpm.MarshalRSAPublic(k2048, tpm.SRKAttributes&^tpm.AttrRestricted, nil), tpm.ErrStorageRootKey},
		{"duplicable", tpm.MarshalRSAPublic(k2048, tpm.SRKAttributes&^tpm.AttrFixedParent, nil), tpm.ErrStorageRootKey},
		{"signing", tpm.MarshalRSAPublic(k2048, tpm.SRKAttributes|tpm.AttrSign, nil), tpm.ErrStorageRootKey},
		{"garbage", []byte{0, 3, 1, 2, 3}, tpm.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tpm.ParseSRK(tt.in)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("ParseSRK = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMakeActivationBlobRefusesBadKeys(t *testing.T) {
	k2048, _ := keys(t)
	ek, _ := tpm.ParseEK(tpm.EKTemplatePublic(k2048))
	notSRK, _ := tpm.ParsePublic(tpm.MarshalRSAPublic(k2048, tpm.SRKAttributes|tpm.AttrSign, nil))
	if _, err := tpm.MakeActivationBlob(rand.Reader, ek, notSRK, make([]byte, 32)); !errors.Is(err, tpm.ErrStorageRootKey) {
		t.Fatalf("MakeActivationBlob(signing SRK) = %v", err)
	}
	if _, err := tpm.MakeActivationBlob(rand.Reader, notSRK, ek, make([]byte, 32)); !errors.Is(err, tpm.ErrEndorsementKey) {
		t.Fatalf("MakeActivationBlob(non-EK) = %v", err)
	}
	srk, _ := tpm.ParseSRK(tpm.MarshalRSAPublic(k2048, tpm.SRKAttributes, nil))
	blob, err := tpm.MakeActivationBlob(rand.Reader, ek, srk, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dps.SplitActivationBlob(blob); err != nil {
		t.Fatal(err)
	}
	if _, err := dps.SplitActivationBlob(blob[:len(blob)-3]); !errors.Is(err, dps.ErrMalformed) {
		t.Fatalf("SplitActivationBlob(truncated) = %v", err)
	}
}
