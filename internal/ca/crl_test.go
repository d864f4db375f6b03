package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestCRL(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	c, _ := newTestCA(t, func(c *Config) { c.Now = clk.Now })
	var revoked []Revoked
	for i, reason := range []int{0, 1, 4} {
		is, err := c.SignCSR(makeCSR(t, testKey(t, "p256"), "r", nil), LeafPolicy{RegistrationID: "r", DeviceID: "d"})
		if err != nil {
			t.Fatal(err)
		}
		revoked = append(revoked, Revoked{Serial: is.Serial, RevokedAt: clk.Now().Add(-time.Duration(i) * time.Hour), Reason: reason})
	}
	der, err := c.CRL(revoked, big.NewInt(7), 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := parseCRL(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(c.Intermediate()); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if crl.Number.Int64() != 7 || !crl.ThisUpdate.Equal(clk.Now()) || !crl.NextUpdate.Equal(clk.Now().Add(12*time.Hour)) {
		t.Errorf("number %s, this %s, next %s", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
	if len(crl.RevokedCertificateEntries) != len(revoked) {
		t.Fatalf("%d entries, want %d", len(crl.RevokedCertificateEntries), len(revoked))
	}
	for i, e := range crl.RevokedCertificateEntries {
		want, _ := new(big.Int).SetString(revoked[i].Serial, 16)
		if e.SerialNumber.Cmp(want) != 0 || e.ReasonCode != revoked[i].Reason || !e.RevocationTime.Equal(revoked[i].RevokedAt) {
			t.Errorf("entry %d = %+v, want %+v", i, e, revoked[i])
		}
	}

	t.Run("default number and next update", func(t *testing.T) {
		der, err := c.CRL(nil, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		crl, _ := parseCRL(der)
		if crl.Number.Int64() != clk.Now().Unix() || !crl.NextUpdate.Equal(clk.Now().Add(DefaultCRLValidity)) {
			t.Errorf("number %s next %s", crl.Number, crl.NextUpdate)
		}
	})

	bad := []struct {
		name string
		r    Revoked
	}{
		{"not hex", Revoked{Serial: "xyz", RevokedAt: clk.Now()}},
		{"empty serial", Revoked{RevokedAt: clk.Now()}},
		{"zero serial", Revoked{Serial: "00", RevokedAt: clk.Now()}},
		{"negative serial", Revoked{Serial: "-1f", RevokedAt: clk.Now()}},
		{"too long", Revoked{Serial: string(bytes.Repeat([]byte("f"), 41)), RevokedAt: clk.Now()}},
		{"reason 7", Revoked{Serial: "1f", RevokedAt: clk.Now(), Reason: 7}},
		{"reason 11", Revoked{Serial: "1f", RevokedAt: clk.Now(), Reason: 11}},
		{"no time", Revoked{Serial: "1f"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.CRL([]Revoked{tt.r}, big.NewInt(1), 0); !errors.Is(err, ErrInvalidRevocation) {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("serial forms", func(t *testing.T) {
		for _, s := range []string{"0A:1B", "0a1b", "A1B"} {
			if _, err := c.CRL([]Revoked{{Serial: s, RevokedAt: clk.Now()}}, big.NewInt(1), 0); err != nil {
				t.Errorf("%q: %v", s, err)
			}
		}
	})
}

// TestCRLOpenSSL: OpenSSL, checking the CRL, refuses a revoked leaf and
// accepts one that is not listed.
func TestCRLOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	c, _ := newTestCA(t, nil)
	sign := func() *Issued {
		is, err := c.SignCSR(makeCSR(t, testKey(t, "p256"), "r", nil), LeafPolicy{RegistrationID: "r", DeviceID: "d"})
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	gone, kept := sign(), sign()
	der, err := c.CRL([]Revoked{{Serial: gone.Serial, RevokedAt: time.Now(), Reason: 1}}, big.NewInt(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle, crl := write("bundle.pem", c.BundlePEM()), write("crl.der", der)
	crlPEM := filepath.Join(dir, "crl.pem")
	if out, err := exec.Command(openssl, "crl", "-inform", "DER", "-in", crl, "-out", crlPEM).CombinedOutput(); err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	run := func(leaf *Issued) ([]byte, error) {
		return exec.Command(openssl, "verify", "-crl_check", "-CRLfile", crlPEM, "-CAfile", bundle, write(leaf.Serial+".pem", pemCert(leaf.DER))).CombinedOutput()
	}
	if out, err := run(kept); err != nil {
		t.Errorf("unrevoked leaf refused: %v\n%s", err, out)
	}
	if out, err := run(gone); err == nil || !bytes.Contains(out, []byte("revoked")) {
		t.Errorf("revoked leaf accepted: %v\n%s", err, out)
	}
}

func parseCRL(der []byte) (*x509.RevocationList, error) { return x509.ParseRevocationList(der) }
