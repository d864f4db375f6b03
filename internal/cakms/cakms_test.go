package cakms_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/cakms"
	"github.com/zdps/zdps/internal/cakms/cakmstest"
	"github.com/zdps/zdps/internal/store/memory"
)

func TestOpenRefusals(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want error
		msg  string
	}{
		{"", cakms.ErrInvalidURI, "no scheme"},
		{"/dev/tpmrm0", cakms.ErrInvalidURI, "no scheme"},
		{"nosuchkms:foo", cakms.ErrInvalidURI, "nosuchkms"},
		{"softkms:", cakms.ErrInvalidURI, "default"},
		{"tpmkms:device=/nonexistent", cakms.ErrInvalidURI, "storage-directory"},
		{"yubikey:serial=1", cakms.ErrNotBuilt, "yubikey"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			_, err := cakms.Open(t.Context(), tc.uri, cakms.Options{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestOpenNeverEchoesThePIN(t *testing.T) {
	for _, u := range []string{
		"pkcs11:module-path=/nonexistent.so;token=x?pin-value=s3cr3t-pin",
		// URIs that do not parse: the SDK's own error would quote them.
		"pkcs11:token=x;pin-value=s3cr3t-pin;bad=%zz",
		"azurekms:vault=v;client-id=c;tenant-id=t;client-secret=s3cr3t-pin%zz",
	} {
		_, err := cakms.Open(t.Context(), u, cakms.Options{})
		if err == nil || strings.Contains(err.Error(), "s3cr3t-pin") {
			t.Fatalf("Open(%q): err = %v", u, err)
		}
	}
}

// checkBackend runs the CA on a real KMS: created keys, a reload through a
// second connection, a leaf that verifies, a CRL, the TLS key.
func checkBackend(t *testing.T, uri string, kt ca.KeyType) {
	ctx := t.Context()
	keys, err := cakms.Open(ctx, uri, cakms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := ca.BackendStorage(memory.New())
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	created, err := ca.New(ctx, ca.Config{Storage: st, KEK: kek, KMS: keys, KeyType: kt})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := cakms.Open(ctx, uri, cakms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Close() })
	c, err := ca.New(ctx, ca.Config{Storage: st, KEK: kek, KMS: again})
	if err != nil {
		t.Fatal(err)
	}
	if c.KMS() != keys.Type() || !c.Intermediate().Equal(created.Intermediate()) {
		t.Fatalf("reloaded CA: kms %q", c.KMS())
	}
	dev, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}, dev)
	if err != nil {
		t.Fatal(err)
	}
	is, err := c.SignCSR(csr, ca.LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(c.Intermediate())
	if _, err := is.Certificate.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	der, err := c.CRL([]ca.Revoked{{Serial: is.Serial, RevokedAt: is.Certificate.NotBefore, Reason: 1}}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(c.Intermediate()) != nil {
		t.Fatalf("CRL: %v", err)
	}
	tc, err := c.ServerCertificate([]string{"localhost"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tc.PrivateKey.(*ecdsa.PrivateKey); ok {
		t.Fatal("the TLS key is a software key, not the KMS's")
	}
}

func TestTPMKMS(t *testing.T) {
	uri, _ := cakmstest.SWTPM(t)
	checkBackend(t, uri, ca.KeyECP256)
}

var _ = context.Background
