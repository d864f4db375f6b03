package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/store/memory"
)

func TestNewThenReloadGivesSameCA(t *testing.T) {
	st := &mapStorage{}
	kek := testKEK(t)
	first, err := New(t.Context(), Config{Storage: st, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(t.Context(), Config{Storage: st, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Root().Equal(second.Root()) || !first.Intermediate().Equal(second.Intermediate()) {
		t.Fatal("reload gave a different CA")
	}
	// The reloaded key is the same key: a leaf it signs chains to the first root.
	is, err := second.SignCSR(makeCSR(t, testKey(t, "p256"), "dev-1", nil), LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Certificate.Verify(x509.VerifyOptions{
		Roots: first.Roots(), Intermediates: poolOf(first.Intermediate()),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("verify against the first CA: %v", err)
	}
}

func TestDefaultsOfCreatedCA(t *testing.T) {
	c, _ := newTestCA(t, nil)
	r, i := c.Root(), c.Intermediate()
	if got := r.PublicKey.(*ecdsa.PublicKey).Curve.Params().Name; got != "P-256" {
		t.Errorf("root curve %s", got)
	}
	if !r.IsCA || !i.IsCA || i.MaxPathLen != 1 || r.MaxPathLen != 2 {
		t.Errorf("basic constraints: root CA=%v, intermediate CA=%v maxPathLen=%d", r.IsCA, i.IsCA, i.MaxPathLen)
	}
	if r.Subject.CommonName != "zdps Root CA" || i.Subject.CommonName != "zdps Intermediate CA" {
		t.Errorf("subjects %q, %q", r.Subject, i.Subject)
	}
	if d := r.NotAfter.Sub(r.NotBefore); d < DefaultRootValidity {
		t.Errorf("root validity %s", d)
	}
	if d := i.NotAfter.Sub(i.NotBefore); d < DefaultIntermediateValidity {
		t.Errorf("intermediate validity %s", d)
	}
	if got := c.ChainDER(); len(got) != 2 || !bytes.Equal(got[0], i.Raw) || !bytes.Equal(got[1], r.Raw) {
		t.Error("ChainDER is not intermediate, root")
	}
	certs := parsePEMCerts(t, c.BundlePEM())
	if len(certs) != 2 || !certs[0].Equal(i) || !certs[1].Equal(r) {
		t.Error("BundlePEM is not intermediate, root")
	}
}

func TestWrongKEK(t *testing.T) {
	st := &mapStorage{}
	if _, err := New(t.Context(), Config{Storage: st, KEK: testKEK(t)}); err != nil {
		t.Fatal(err)
	}
	_, err := New(t.Context(), Config{Storage: st, KEK: testKEK(t)})
	if !errors.Is(err, ErrBadKEK) {
		t.Fatalf("got %v, want ErrBadKEK", err)
	}
}

func TestTamperedStateIsRefused(t *testing.T) {
	victim := &mapStorage{}
	kek := testKEK(t)
	if _, err := New(t.Context(), Config{Storage: victim, KEK: kek}); err != nil {
		t.Fatal(err)
	}
	// An attacker with write access to the store but not the KEK.
	other := &mapStorage{}
	if _, err := New(t.Context(), Config{Storage: other, KEK: testKEK(t)}); err != nil {
		t.Fatal(err)
	}
	var good, theirs castate.State
	mustUnmarshal(t, victim.state, &good)
	mustUnmarshal(t, other.state, &theirs)

	tests := []struct {
		name string
		mod  func(s *castate.State) []byte
		want error
	}{
		{"not JSON", func(*castate.State) []byte { return []byte("{") }, ErrCorruptState},
		{"unknown version", func(s *castate.State) []byte { s.Version = 99; return mustMarshal(t, s) }, ErrCorruptState},
		{"their certificates, our sealed keys", func(s *castate.State) []byte {
			s.Root, s.Intermediate = theirs.Root, theirs.Intermediate
			return mustMarshal(t, s)
		}, ErrCorruptState},
		{"their whole state", func(*castate.State) []byte { return other.state }, ErrBadKEK},
		{"flipped key byte", func(s *castate.State) []byte {
			s.IntermediateKey = bytes.Clone(s.IntermediateKey)
			s.IntermediateKey[len(s.IntermediateKey)-1] ^= 1
			return mustMarshal(t, s)
		}, ErrCorruptState},
		{"root key swapped with intermediate key", func(s *castate.State) []byte {
			s.RootKey = s.IntermediateKey
			return mustMarshal(t, s)
		}, ErrCorruptState},
		{"truncated key", func(s *castate.State) []byte { s.IntermediateKey = s.IntermediateKey[:5]; return mustMarshal(t, s) }, ErrCorruptState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			st := &mapStorage{state: tt.mod(&s)}
			_, err := New(t.Context(), Config{Storage: st, KEK: kek})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestConcurrentNewEndsWithOneCA(t *testing.T) {
	st := BackendStorage(memory.New())
	kek := testKEK(t)
	const n = 16
	roots := make([]*x509.Certificate, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := New(t.Context(), Config{Storage: st, KEK: kek})
			if err != nil {
				t.Error(err)
				return
			}
			roots[i] = c.Root()
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if roots[i] == nil || !roots[i].Equal(roots[0]) {
			t.Fatalf("replica %d has a different root", i)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	st := &mapStorage{}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no storage", Config{KEK: make([]byte, 32)}},
		{"no KEK", Config{Storage: st}},
		{"short KEK", Config{Storage: st, KEK: make([]byte, 31)}},
		{"unknown key type", Config{Storage: st, KEK: make([]byte, 32), KeyType: "RSA-1024"}},
		{"negative validity", Config{Storage: st, KEK: make([]byte, 32), DefaultLeafValidity: -1}},
		{"intermediate outlives root", Config{Storage: st, KEK: make([]byte, 32), RootValidity: 10, IntermediateValidity: 20}},
		{"relative CRL URL", Config{Storage: st, KEK: make([]byte, 32), CRLURL: "/crl"}},
		{"CRL URL not http", Config{Storage: st, KEK: make([]byte, 32), CRLURL: "ldap://x/crl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(t.Context(), tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if st.state != nil {
				t.Fatal("an invalid configuration stored a CA")
			}
		})
	}
}

func TestKeyTypeP384(t *testing.T) {
	c, _ := newTestCA(t, func(c *Config) { c.KeyType = KeyECP384 })
	if got := c.Intermediate().PublicKey.(*ecdsa.PublicKey).Curve.Params().Name; got != "P-384" {
		t.Fatalf("curve %s", got)
	}
}

func TestKEKFromPassphrase(t *testing.T) {
	salt := []byte("0123456789abcdef")
	a, err := KEKFromPassphrase("correct horse", salt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := KEKFromPassphrase("correct horse", salt)
	c, _ := KEKFromPassphrase("correct horse", []byte("fedcba9876543210"))
	if len(a) != MinKEKSize || !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("derivation is not deterministic per salt")
	}
	for _, tt := range []struct {
		name string
		pass string
		salt []byte
	}{{"empty passphrase", "", salt}, {"short salt", "x", salt[:15]}} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := KEKFromPassphrase(tt.pass, tt.salt); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v", err)
			}
		})
	}
	st := &mapStorage{}
	if _, err := New(t.Context(), Config{Storage: st, KEK: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), Config{Storage: st, KEK: c}); !errors.Is(err, ErrBadKEK) {
		t.Fatalf("other salt: got %v, want ErrBadKEK", err)
	}
}

func TestBackendStorageContract(t *testing.T) {
	ctx := context.Background()
	s := BackendStorage(memory.New())
	if _, err := s.Load(ctx); !errors.Is(err, ErrNoState) {
		t.Fatalf("empty Load: %v", err)
	}
	if err := s.Create(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, []byte("two")); !errors.Is(err, ErrStateExists) {
		t.Fatalf("second Create: %v", err)
	}
	got, err := s.Load(ctx)
	if err != nil || string(got) != "one" {
		t.Fatalf("Load = %q, %v", got, err)
	}
}

// TestLogsCarryNoSecrets captures every log line of a start and an issuance.
func TestLogsCarryNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, cfg := newTestCA(t, func(c *Config) { c.Logger = log })
	if _, err := c.SignCSR(makeCSR(t, testKey(t, "p256"), "dev", nil), LeafPolicy{RegistrationID: "dev", DeviceID: "dev"}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() == 0 {
		t.Fatal("nothing logged")
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.cur.Load().Signer)
	if err != nil {
		t.Fatal(err)
	}
	d := c.cur.Load().Signer.(*ecdsa.PrivateKey).D.Bytes()
	for name, secret := range map[string][]byte{"KEK": cfg.KEK, "key DER": der, "scalar": d} {
		for _, enc := range encodings(secret) {
			if bytes.Contains(buf.Bytes(), []byte(enc)) {
				t.Errorf("logs contain the %s", name)
			}
		}
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
