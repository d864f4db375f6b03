package sealed

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func testBox(t testing.TB, fill byte) *Box {
	t.Helper()
	b, err := New(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := testBox(t, 1)
	for _, pt := range []string{"", "k", strings.Repeat("x", 88), "https://fn.example/api/alloc?code=s3cr3t"} {
		s, err := b.Seal([]byte(pt), "enrollments\x00dev-1\x00primaryKey")
		if err != nil {
			t.Fatal(err)
		}
		if !IsSealed(s) {
			t.Fatalf("Seal(%q) = %q: not recognised as sealed", pt, s)
		}
		if len(pt) >= 8 && strings.Contains(s, pt) { // a short one may occur in random base64
			t.Fatalf("sealed form %q contains the plaintext", s)
		}
		got, err := b.Open(s, "enrollments\x00dev-1\x00primaryKey")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(got) != pt {
			t.Fatalf("Open = %q, want %q", got, pt)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	b := testBox(t, 1)
	const ad = "policies\x00owner\x00primaryKey"
	s, err := b.Seal([]byte("secret key"), ad)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(s[len(Prefix):])
	flip := func(i int) string {
		r := bytes.Clone(raw)
		r[i] ^= 1
		return Prefix + base64.StdEncoding.EncodeToString(r)
	}
	tests := []struct {
		name   string
		box    *Box
		stored string
		ad     string
		want   error
	}{
		{"other record", b, s, "policies\x00other\x00primaryKey", ErrOpen},
		{"other field", b, s, "policies\x00owner\x00secondaryKey", ErrOpen},
		{"other KEK", testBox(t, 2), s, ad, ErrOpen},
		{"nonce altered", b, flip(0), ad, ErrOpen},
		{"ciphertext altered", b, flip(len(raw) / 2), ad, ErrOpen},
		{"tag altered", b, flip(len(raw) - 1), ad, ErrOpen},
		{"truncated", b, Prefix + base64.StdEncoding.EncodeToString(raw[:20]), ad, ErrFormat},
		{"not base64", b, Prefix + "!!!", ad, ErrFormat},
		{"plaintext", b, "c2VjcmV0IGtleQ==", ad, ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.box.Open(tt.stored, tt.ad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestLegacyPlaintextIsNotSealed(t *testing.T) {
	for _, s := range []string{
		"", "c2VjcmV0IGtleQ==", // a base64 key never holds ':'
		"https://fn.example/api?code=x", "zdps:v2:abc", "ZDPS:V1:abc",
	} {
		if IsSealed(s) {
			t.Errorf("IsSealed(%q) = true", s)
		}
	}
}

func TestNoncesDistinct(t *testing.T) {
	b := testBox(t, 1)
	seen := map[string]bool{}
	for range 1000 {
		s, err := b.Seal([]byte("same key"), "same place")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(s[len(Prefix):])
		n := string(raw[:12])
		if seen[n] {
			t.Fatal("nonce repeated")
		}
		seen[n] = true
	}
}

func TestSubkeyIsNotTheKEK(t *testing.T) {
	// A value sealed directly under the KEK (as a careless reuse would)
	// must not open: the box's key is derived, not the KEK itself.
	kek := bytes.Repeat([]byte{7}, 32)
	b, err := New(kek)
	if err != nil {
		t.Fatal(err)
	}
	raw := &Box{aead: mustGCM(t, kek), rand: b.rand}
	s, err := raw.Seal([]byte("x"), "ad")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(s, "ad"); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open of a value sealed under the bare KEK: %v, want ErrOpen", err)
	}
}

func TestShortKEK(t *testing.T) {
	if _, err := New(make([]byte, 31)); !errors.Is(err, ErrKEK) {
		t.Fatalf("New(31 bytes) = %v, want ErrKEK", err)
	}
}

func BenchmarkSeal(b *testing.B) {
	box := testBox(b, 1)
	key := []byte(strings.Repeat("A", 88)) // a 64-byte key in base64, as stored
	b.ReportAllocs()
	for b.Loop() {
		if _, err := box.Seal(key, "enrollments\x00dev-1\x00attestation.symmetricKey.primaryKey"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	box := testBox(b, 1)
	s, _ := box.Seal([]byte(strings.Repeat("A", 88)), "enrollments\x00dev-1\x00attestation.symmetricKey.primaryKey")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := box.Open(s, "enrollments\x00dev-1\x00attestation.symmetricKey.primaryKey"); err != nil {
			b.Fatal(err)
		}
	}
}
