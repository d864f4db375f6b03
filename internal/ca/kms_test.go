package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.step.sm/crypto/keyutil"

	"github.com/zdps/zdps/internal/ca/castate"
)

// memKMS is an in-process KeyStore: the package's contract with a KMS
// tested without one (internal/cakms tests the real backends). It also
// records every key it made so that tests can look for them in the state.
type memKMS struct {
	typ  string
	mu   sync.Mutex
	keys map[string]crypto.Signer
}

func newMemKMS(typ string) *memKMS { return &memKMS{typ: typ, keys: map[string]crypto.Signer{}} }

func (m *memKMS) Type() string { return m.typ }

func (m *memKMS) CreateKey(_ context.Context, kt KeyType, label string) (string, crypto.Signer, error) {
	k, err := keyutil.GenerateSigner("EC", kt.Curve(), 0)
	if err != nil {
		return "", nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ref := fmt.Sprintf("%s:name=%s-%d", m.typ, label, len(m.keys))
	m.keys[ref] = k
	return ref, k, nil
}

func (m *memKMS) Signer(_ context.Context, ref string) (crypto.Signer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[ref]
	if !ok {
		return nil, fmt.Errorf("no key %q", ref)
	}
	return k, nil
}

func TestKMSKeysStayInTheKMS(t *testing.T) {
	st := &mapStorage{}
	kek := testKEK(t)
	kms := newMemKMS("pkcs11")
	c, err := New(t.Context(), Config{Storage: st, KEK: kek, KMS: kms})
	if err != nil {
		t.Fatal(err)
	}
	if c.KMS() != "pkcs11" {
		t.Fatalf("KMS() = %q", c.KMS())
	}
	var s castate.State
	if err := json.Unmarshal(st.state, &s); err != nil {
		t.Fatal(err)
	}
	if s.Version != castate.VersionKMS || s.IntermediateKey != nil || s.IntermediateKeyRef == nil || s.TLSKeyRef == nil || s.KMS != "pkcs11" {
		t.Fatalf("state: version %d, sealed key %v, ref %v, TLS ref %v, kms %q", s.Version, s.IntermediateKey != nil, s.IntermediateKeyRef != nil, s.TLSKeyRef != nil, s.KMS)
	}
	// Neither the KMS keys nor their references appear in the state.
	for ref, k := range kms.keys {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(st.state, der) || bytes.Contains(st.state, []byte(ref)) {
			t.Fatalf("the state holds key %s or its reference in clear", ref)
		}
	}

	// A reload opens the same keys: a leaf chains, the TLS key is the KMS's.
	again, err := New(t.Context(), Config{Storage: st, KEK: kek, KMS: kms})
	if err != nil {
		t.Fatal(err)
	}
	is, err := again.SignCSR(makeCSR(t, testKey(t, "p256"), "dev-1", nil), LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Certificate.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: poolOf(c.Intermediate()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	a, err := again.ServerCertificate([]string{"localhost"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := again.ServerCertificate([]string{"localhost"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.PrivateKey != b.PrivateKey || !kmsHolds(kms, a.PrivateKey.(crypto.Signer)) {
		t.Fatal("the TLS certificate's key is not the KMS's TLS key")
	}
	if _, err := again.CRL(nil, nil, 0); err != nil {
		t.Fatal(err)
	}
}

func kmsHolds(m *memKMS, s crypto.Signer) bool {
	for _, k := range m.keys {
		if k == s {
			return true
		}
	}
	return false
}

func TestKMSRequiredAndMismatch(t *testing.T) {
	st := &mapStorage{}
	kek := testKEK(t)
	if _, err := New(t.Context(), Config{Storage: st, KEK: kek, KMS: newMemKMS("pkcs11")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kms  KeyStore
		want error
	}{
		{"no KMS", nil, ErrKMSRequired},
		{"another type", newMemKMS("tpmkms"), ErrKMSMismatch},
		{"same type, key not there", newMemKMS("pkcs11"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Storage: st, KEK: kek}
			if tc.kms != nil {
				cfg.KMS = tc.kms
			}
			_, err := New(t.Context(), cfg)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// A KMS given for a CA whose key is sealed in the store loads it (the
	// KMS is there for a rotation into it) and says where the key is.
	sealed := &mapStorage{}
	if _, err := New(t.Context(), Config{Storage: sealed, KEK: kek}); err != nil {
		t.Fatal(err)
	}
	c, err := New(t.Context(), Config{Storage: sealed, KEK: kek, KMS: newMemKMS("pkcs11")})
	if err != nil || c.KMS() != "" {
		t.Fatalf("sealed CA with a KMS: kms %q, err %v", c.KMS(), err)
	}
}

func TestKMSKeyOtherThanCertificate(t *testing.T) {
	st := &mapStorage{}
	kek := testKEK(t)
	kms := newMemKMS("pkcs11")
	if _, err := New(t.Context(), Config{Storage: st, KEK: kek, KMS: kms}); err != nil {
		t.Fatal(err)
	}
	// The HSM's key under that name was replaced.
	for ref := range kms.keys {
		k, _ := keyutil.GenerateSigner("EC", "P-256", 0)
		kms.keys[ref] = k
	}
	if _, err := New(t.Context(), Config{Storage: st, KEK: kek, KMS: kms}); !errors.Is(err, ErrKMSMismatch) {
		t.Fatalf("err = %v, want ErrKMSMismatch", err)
	}
}

func TestKMSStateTamperedRef(t *testing.T) {
	st := &mapStorage{}
	kek := testKEK(t)
	kms := newMemKMS("pkcs11")
	if _, err := New(t.Context(), Config{Storage: st, KEK: kek, KMS: kms}); err != nil {
		t.Fatal(err)
	}
	var s castate.State
	if err := json.Unmarshal(st.state, &s); err != nil {
		t.Fatal(err)
	}
	s.IntermediateKeyRef[len(s.IntermediateKeyRef)-1] ^= 1
	st.state, _ = json.Marshal(s)
	if _, err := New(t.Context(), Config{Storage: st, KEK: kek, KMS: kms}); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("err = %v, want ErrCorruptState", err)
	}
}

func TestCreateOfflineRoot(t *testing.T) {
	st := &mapStorage{}
	kek := testKEK(t)
	c, rootPEM, err := Create(t.Context(), Config{Storage: st, KEK: kek, OfflineRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(rootPEM)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		t.Fatalf("root key PEM: %q", rootPEM)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyutil.VerifyPair(c.Root().PublicKey, k); err != nil {
		t.Fatalf("the handed-out key is not the root's: %v", err)
	}
	var s castate.State
	if err := json.Unmarshal(st.state, &s); err != nil {
		t.Fatal(err)
	}
	if s.RootKey != nil {
		t.Fatal("the state keeps the offline root's key")
	}
	if bytes.Contains(st.state, blk.Bytes) {
		t.Fatal("the root key is in the state")
	}
	// The server loads and issues without the root key.
	again, err := New(t.Context(), Config{Storage: st, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.SignCSR(makeCSR(t, testKey(t, "p256"), "dev-1", nil), LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	// Create never replaces a CA.
	if _, _, err := Create(t.Context(), Config{Storage: st, KEK: kek}); !errors.Is(err, ErrStateExists) {
		t.Fatalf("second Create: %v, want ErrStateExists", err)
	}
	// Without OfflineRoot, Create seals the root and hands out nothing.
	_, none, err := Create(t.Context(), Config{Storage: &mapStorage{}, KEK: kek})
	if err != nil || none != nil {
		t.Fatalf("Create: key %v, err %v", none != nil, err)
	}
}
