package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
)

// mapStorage is a fake Storage whose bytes tests can tamper with.
type mapStorage struct {
	mu    sync.Mutex
	state []byte
}

func (m *mapStorage) Load(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == nil {
		return nil, ErrNoState
	}
	return bytes.Clone(m.state), nil
}

func (m *mapStorage) Create(_ context.Context, s []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != nil {
		return ErrStateExists
	}
	m.state = bytes.Clone(s)
	return nil
}

func testKEK(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestCA creates a CA on a fresh in-memory store backend, through the
// same adapter zdps serve uses.
func newTestCA(t testing.TB, mod func(*Config)) (*CA, Config) {
	t.Helper()
	cfg := Config{Storage: BackendStorage(memory.New()), KEK: testKEK(t)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, cfg
}

var (
	keyCacheMu sync.Mutex
	keyCache   = map[string]crypto.Signer{}
)

// testKey returns a cached key of the named kind: RSA generation is slow
// and tests need each kind many times.
func testKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	if k, ok := keyCache[kind]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	keyCache[kind] = k
	return k
}

func makeCSR(t testing.TB, key crypto.Signer, cn string, mod func(*x509.CertificateRequest)) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	if mod != nil {
		mod(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = t
}

func (m *mapStorage) Swap(_ context.Context, old, next []byte, also func(store.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.Equal(m.state, old) {
		return ErrStateChanged
	}
	if err := also(nil); err != nil {
		return err
	}
	m.state = bytes.Clone(next)
	return nil
}

// verifyWithBundle checks a leaf against the CA's published bundle only.
func verifyWithBundle(t *testing.T, c *CA, leaf *x509.Certificate) {
	t.Helper()
	certs := parsePEMCerts(t, c.BundlePEM())
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, cert := range certs {
		if cert.Equal(c.Root()) {
			roots.AddCert(cert)
		} else {
			inters.AddCert(cert)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify %s against the bundle: %v", leaf.Subject, err)
	}
}

func issueTest(t *testing.T, c *CA, id string) *x509.Certificate {
	t.Helper()
	is, err := c.SignCSR(makeCSR(t, testKey(t, "p256"), id, nil), LeafPolicy{RegistrationID: id, DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	return is.Certificate
}

// bundleIntermediates is every certificate of the bundle but the roots.
func bundleIntermediates(t *testing.T, c *CA, roots ...*x509.Certificate) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
next:
	for _, cert := range parsePEMCerts(t, c.BundlePEM()) {
		for _, r := range roots {
			if cert.Equal(r) {
				continue next
			}
		}
		pool.AddCert(cert)
	}
	return pool
}
