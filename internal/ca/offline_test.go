package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestSignIntermediateWithOfflineRoot(t *testing.T) {
	c, rootPEM, err := Create(t.Context(), Config{Storage: &mapStorage{}, KEK: testKEK(t), OfflineRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(rootPEM)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rootKey := k.(*ecdsa.PrivateKey)
	newKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "zdps Intermediate CA 2"},
		// Asked for, never granted: the profile is zdps's.
		DNSNames: []string{"evil.example"},
	}, newKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	inter, err := SignIntermediate(c.Root(), rootKey, csr, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if !inter.IsCA || inter.MaxPathLen != 1 || len(inter.DNSNames) != 0 || inter.Subject.CommonName != "zdps Intermediate CA 2" ||
		inter.NotAfter.After(c.Root().NotAfter) || inter.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("intermediate profile: %+v", inter)
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		dir := t.TempDir()
		rootFile, interFile := filepath.Join(dir, "root.pem"), filepath.Join(dir, "inter.pem")
		_ = os.WriteFile(rootFile, pemCert(c.Root().Raw), 0o644)
		_ = os.WriteFile(interFile, pemCert(inter.Raw), 0o644)
		if out, err := exec.Command(openssl, "verify", "-CAfile", rootFile, interFile).CombinedOutput(); err != nil {
			t.Fatalf("openssl verify: %v\n%s", err, out)
		}
	}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	weakCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, weak)
	noCN, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, newKey)
	for _, tc := range []struct {
		name string
		key  *ecdsa.PrivateKey
		csr  []byte
		now  time.Time
		want error
	}{
		{"another root key", other, csr, now, ErrInvalidCA},
		{"garbage CSR", rootKey, []byte("nope"), now, ErrCSRMalformed},
		{"weak key", rootKey, weakCSR, now, ErrCSRKey},
		{"no common name", rootKey, noCN, now, ErrCSRSubject},
		{"root expired", rootKey, csr, c.Root().NotAfter.Add(time.Hour), ErrCAExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SignIntermediate(c.Root(), tc.key, tc.csr, 0, tc.now); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
