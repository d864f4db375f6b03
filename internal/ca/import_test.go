package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"go.step.sm/crypto/pemutil"

	"github.com/zdps/zdps/internal/ca/castate"
)

// extCA is an operator's existing CA, made the way any tool would.
type extCA struct {
	Root, Inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newExtCA(t *testing.T, rootKind string, mod func(root, inter *x509.Certificate)) extCA {
	t.Helper()
	now := time.Now()
	rk, ik := testKey(t, rootKind), testKey(t, "rsa2048")
	rt := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * 365 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	it := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Acme Issuing"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * 100 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if mod != nil {
		mod(rt, it)
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rt, rt, rk.Public(), rk)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	interDER, err := x509.CreateCertificate(rand.Reader, it, root, ik.Public(), rk)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(interDER)
	return extCA{Root: root, Inter: inter, rootKey: rk, interKey: ik}
}

// bundle returns e as Import takes it; with a password the key is encrypted
// as PKCS#8 PBES2 (600,000 PBKDF2 rounds: slow, so used once) or, with
// legacy set, as OpenSSL's traditional DEK-Info PEM.
func (e extCA) bundle(t *testing.T, password []byte, legacy ...bool) Bundle {
	t.Helper()
	opts := []pemutil.Options{pemutil.WithPKCS8(len(legacy) == 0)}
	if password != nil {
		opts = append(opts, pemutil.WithPassword(password))
	}
	blk, err := pemutil.Serialize(e.interKey, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return Bundle{RootPEM: pemCert(e.Root.Raw), IntermediatePEM: pemCert(e.Inter.Raw), IntermediateKeyPEM: pem.EncodeToMemory(blk), KeyPassword: password}
}

func TestImport(t *testing.T) {
	ext := newExtCA(t, "p384", nil)
	st := &mapStorage{}
	kek := testKEK(t)
	pw := []byte("import password")
	c, err := Import(t.Context(), Config{Storage: st, KEK: kek}, ext.bundle(t, pw))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Root().Equal(ext.Root) || !c.Intermediate().Equal(ext.Inter) {
		t.Fatal("imported CA is not the bundle's")
	}
	var s castate.State
	mustUnmarshal(t, st.state, &s)
	if s.RootKey != nil || !s.Imported {
		t.Error("state of an imported CA must have no root key and say imported")
	}
	if bytes.Contains(st.state, ext.bundle(t, nil).IntermediateKeyPEM) {
		t.Error("key stored in the clear")
	}
	// Reload, then issue: the intermediate has no SubjectKeyId of Go's
	// making here, so the leaf's AKI must still point at it.
	c2, err := New(t.Context(), Config{Storage: st, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	is, err := c2.SignCSR(makeCSR(t, testKey(t, "p256"), "r", nil), LeafPolicy{RegistrationID: "r", DeviceID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Certificate.Verify(x509.VerifyOptions{Roots: c2.Roots(), Intermediates: poolOf(ext.Inter), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if len(is.Certificate.AuthorityKeyId) == 0 {
		t.Error("no AuthorityKeyId")
	}
	if _, err := Import(t.Context(), Config{Storage: st, KEK: kek}, ext.bundle(t, nil)); !errors.Is(err, ErrStateExists) {
		t.Fatalf("import over an existing CA: %v", err)
	}
}

func TestImportRefusals(t *testing.T) {
	good := newExtCA(t, "p384", nil)
	// Same names, another root key.
	other := newExtCA(t, "p256", nil)
	tests := []struct {
		name string
		b    func() Bundle
	}{
		{"wrong password", func() Bundle { b := good.bundle(t, []byte("a"), true); b.KeyPassword = []byte("b"); return b }},
		{"encrypted key, no password", func() Bundle { b := good.bundle(t, []byte("a"), true); b.KeyPassword = nil; return b }},
		{"key of another intermediate", func() Bundle {
			b := good.bundle(t, nil)
			b.IntermediateKeyPEM = pemKey(t, testKey(t, "p256"))
			return b
		}},
		{"intermediate of another root", func() Bundle {
			b := good.bundle(t, nil)
			b.RootPEM = pemCert(other.Root.Raw)
			return b
		}},
		{"root given as intermediate", func() Bundle {
			b := good.bundle(t, nil)
			b.IntermediatePEM, b.IntermediateKeyPEM = b.RootPEM, pemKey(t, good.rootKey)
			return b
		}},
		{"no cRLSign", func() Bundle {
			return newExtCA(t, "p384", func(_, i *x509.Certificate) { i.KeyUsage = x509.KeyUsageCertSign }).bundle(t, nil)
		}},
		{"intermediate not a CA", func() Bundle {
			return newExtCA(t, "p384", func(_, i *x509.Certificate) { i.IsCA = false; i.KeyUsage = x509.KeyUsageDigitalSignature }).bundle(t, nil)
		}},
		{"expired intermediate", func() Bundle {
			return newExtCA(t, "p384", func(_, i *x509.Certificate) { i.NotAfter = time.Now().Add(-time.Minute) }).bundle(t, nil)
		}},
		{"garbage root", func() Bundle { b := good.bundle(t, nil); b.RootPEM = []byte("x"); return b }},
		{"garbage key", func() Bundle { b := good.bundle(t, nil); b.IntermediateKeyPEM = []byte("x"); return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &mapStorage{}
			_, err := Import(t.Context(), Config{Storage: st, KEK: testKEK(t)}, tt.b())
			if !errors.Is(err, ErrInvalidCA) {
				t.Fatalf("got %v, want ErrInvalidCA", err)
			}
			if st.state != nil {
				t.Fatal("a refused import stored a state")
			}
		})
	}
}

func pemKey(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	blk, err := pemutil.Serialize(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(blk)
}

// TestImportIntermediateWithoutSKI: some older CAs have no
// SubjectKeyIdentifier; leaves must still carry an AuthorityKeyId and the
// CRL must still be signed.
func TestImportIntermediateWithoutSKI(t *testing.T) {
	ext := newExtCA(t, "p384", func(_, i *x509.Certificate) {
		// Go adds a SubjectKeyId to CA templates; declaring the CA bit
		// only through a raw extension keeps it out.
		i.IsCA = false
		bc, _ := asn1.Marshal(struct{ IsCA bool }{true})
		i.ExtraExtensions = []pkix.Extension{{Id: oidBC, Critical: true, Value: bc}}
	})
	if len(ext.Inter.SubjectKeyId) != 0 || !ext.Inter.IsCA {
		t.Fatal("fixture: want a CA intermediate without SubjectKeyId")
	}
	c, err := Import(t.Context(), Config{Storage: &mapStorage{}, KEK: testKEK(t)}, ext.bundle(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	is, err := c.SignCSR(makeCSR(t, testKey(t, "p256"), "r", nil), LeafPolicy{RegistrationID: "r", DeviceID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if want := castate.KeyID(ext.Inter.PublicKey); !bytes.Equal(is.Certificate.AuthorityKeyId, want) {
		t.Errorf("AuthorityKeyId %x, want %x", is.Certificate.AuthorityKeyId, want)
	}
	if _, err := is.Certificate.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: poolOf(c.Intermediate()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	der, err := c.CRL(nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(c.Intermediate()); err != nil {
		t.Fatal(err)
	}
}
