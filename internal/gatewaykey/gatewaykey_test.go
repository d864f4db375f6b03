package gatewaykey

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/zdps/zdps/pkg/dps"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := newKey(t)
	r, err := NewRecipient(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(k)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := r.Seal(AAD("enrollment", "dev-1", "primaryKey"), []byte("c2VjcmV0"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.Open(AAD("enrollment", "dev-1", "primaryKey"), sealed)
	if err != nil || string(got) != "c2VjcmV0" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other := newKey(t)
	wrong, _ := NewOpener(other)
	tamperedCT := sealed
	tamperedCT.CT = sealed.CT[:len(sealed.CT)-4] + "AAAA"
	for _, tc := range []struct {
		name string
		o    *Opener
		aad  string
		k    dps.SealedKey
	}{
		{"wrong key", wrong, AAD("enrollment", "dev-1", "primaryKey"), sealed},
		{"other document", o, AAD("enrollment", "dev-2", "primaryKey"), sealed},
		{"other field", o, AAD("enrollment", "dev-1", "secondaryKey"), sealed},
		{"other kind", o, AAD("group", "dev-1", "primaryKey"), sealed},
		{"altered ciphertext", o, AAD("enrollment", "dev-1", "primaryKey"), tamperedCT},
		{"bad base64", o, AAD("enrollment", "dev-1", "primaryKey"), dps.SealedKey{Enc: "!", CT: sealed.CT}},
		{"empty", o, AAD("enrollment", "dev-1", "primaryKey"), dps.SealedKey{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.o.Open(tc.aad, tc.k); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %v, want ErrOpen", err)
			}
		})
	}
}

func TestKeyTypes(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	for _, pub := range []any{&p384.PublicKey, x.PublicKey(), "not a key"} {
		if _, err := NewRecipient(pub); !errors.Is(err, ErrKey) {
			t.Errorf("NewRecipient(%T) = %v, want ErrKey", pub, err)
		}
	}
	if _, err := NewOpener(p384); !errors.Is(err, ErrKey) {
		t.Errorf("NewOpener(P-384) = %v", err)
	}
	// An ecdh key (as a TPM-backed KeyExchanger would be) opens too.
	k := newKey(t)
	ek, _ := k.ECDH()
	r, _ := NewRecipient(ek.PublicKey())
	o, err := NewOpener(ek)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Seal("a", []byte("b"))
	if got, err := o.Open("a", s); err != nil || string(got) != "b" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestSealDocument(t *testing.T) {
	k := newKey(t)
	r, _ := NewRecipient(&k.PublicKey)
	o, _ := NewOpener(k)
	for _, tc := range []struct {
		name, doc string
		sealed    bool
	}{
		{"both keys", `{"registrationId":"dev-1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"cHJpbWFyeWtleTEyMzQ1Ng==","secondaryKey":"c2Vjb25kYXJ5a2V5MTIzNA=="}},"site":"plant"}`, true},
		{"primary only", `{"registrationId":"dev-1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"cHJpbWFyeWtleTEyMzQ1Ng=="}}}`, true},
		{"x509", `{"registrationId":"dev-1","attestation":{"type":"x509","x509":{}}}`, false},
		{"no attestation", `{"name":"plant","hubs":[]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := r.SealDocument(json.RawMessage(tc.doc), "enrollment", "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			if tc.sealed == strings.Contains(string(out), "cHJpbWFyeWtleTEyMzQ1Ng") && strings.Contains(tc.doc, "cHJpbWFyeWtleTEyMzQ1Ng") {
				t.Fatalf("key left in the clear: %s", out)
			}
			back, err := o.OpenDocument(out, "enrollment", "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			_ = json.Unmarshal([]byte(tc.doc), &want)
			_ = json.Unmarshal(back, &got)
			wb, _ := json.Marshal(want)
			gb, _ := json.Marshal(got)
			if string(wb) != string(gb) {
				t.Fatalf("round trip:\n got %s\nwant %s", gb, wb)
			}
			if _, err := o.OpenDocument(out, "enrollment", "dev-2"); tc.sealed && !errors.Is(err, ErrOpen) {
				t.Fatalf("opened under another ID: %v", err)
			}
		})
	}
}
