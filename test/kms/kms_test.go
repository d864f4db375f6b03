// Package kms runs zdps end to end with the CA's keys in a KMS: `zdps ca
// init --kms`, `zdps serve --ca-kms`, a device registering with a CSR,
// `openssl verify` of its certificate against the exported bundle, and a
// search of the data directory and the store for the intermediate's key.
// SoftHSM2 (PKCS#11, the pkcs11 build tag: make test sets it) and swtpm
// (tpmkms) are the real backends; scripts/test-setup.sh installs both.
package kms

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/cakms/cakmstest"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// zdps runs the binary under test and returns its combined output.
func zdps(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, zdpstest.Binary(t), args...).CombinedOutput()
	return string(out), err
}

// pkcs8P256Prefix starts the PKCS#8 DER of every P-256 private key: a key
// in the clear anywhere would carry it.
var pkcs8P256Prefix = []byte{0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

// kmsEndToEnd is the whole scenario on one KMS URI. offline also keeps the
// root key out of the store.
func kmsEndToEnd(t *testing.T, uri, wantKMS string) {
	dataDir := t.TempDir()
	rootKeyFile := filepath.Join(t.TempDir(), "root.key")
	out, err := zdps(t, "ca", "init", "--data-dir", dataDir, "--kms", uri, "--offline-root", rootKeyFile)
	if err != nil {
		t.Fatalf("zdps ca init: %v\n%s", err, out)
	}
	if !strings.Contains(out, "in the "+wantKMS+" KMS") {
		t.Fatalf("ca init says:\n%s", out)
	}
	if out, err := zdps(t, "ca", "init", "--data-dir", dataDir, "--kms", uri); err == nil || !strings.Contains(out, "already holds a CA") {
		t.Fatalf("second ca init: %v\n%s", err, out)
	}

	srv := zdpstest.StartIn(t, dataDir, "--ca-kms", uri)
	firstTLS := servedTLSKey(t, srv)
	if _, err := srv.Client().PutHub(t.Context(), &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	regID := "kms-dev-1"
	key := srv.SymmetricKeyEnrollment(regID)
	res, err := device.Register(t.Context(), device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: regID, SymmetricKey: key,
		GenerateKey: true, RootCAs: srv.RootCAs(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "assigned" || len(res.IssuedCertificateChain) == 0 {
		t.Fatalf("registration: %+v", res)
	}
	// openssl verify, against the bundle `zdps ca export` writes.
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if out, err := zdps(t, "ca", "export", "--data-dir", dataDir, "--out", bundle); err != nil {
		t.Fatalf("zdps ca export: %v\n%s", err, out)
	}
	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: res.IssuedCertificateChain[0].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("openssl", "verify", "-purpose", "sslclient", "-CAfile", bundle, leaf).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// The CRL is signed in the KMS too, and verifies.
	if out, err := zdps(t, "ca", "crl", "--data-dir", dataDir); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("zdps ca crl: %v\n%s", err, out)
	}

	// The TLS key is the KMS's: the same key after a restart.
	srv.Restart()
	if again := servedTLSKey(t, srv); !again.Equal(firstTLS) {
		t.Fatal("the TLS key changed across a restart: it is not the KMS's")
	}
	srv.Stop()

	// What a thief of the data directory gets: no private key in the
	// clear in any file, and a state whose intermediate key is only a
	// sealed reference; the root key is not there at all.
	_ = filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) || bytes.Contains(b, pkcs8P256Prefix) {
			t.Errorf("%s holds a private key in the clear", p)
		}
		return nil
	})
	st := readState(t, filepath.Join(dataDir, "zdps.db"))
	for _, field := range []string{"intermediateKey", "rootKey"} {
		if _, ok := st[field]; ok {
			t.Errorf("the stored CA state has %s", field)
		}
	}
	if st["kms"] != wantKMS || st["intermediateKeyRef"] == nil || st["tlsKeyRef"] == nil {
		t.Errorf("stored state: kms %v, refs %v %v", st["kms"], st["intermediateKeyRef"] != nil, st["tlsKeyRef"] != nil)
	}
	// The root key went to the operator's file and nowhere else.
	if b, err := os.ReadFile(rootKeyFile); err != nil || !bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Fatalf("offline root key file: %v", err)
	}

	// Rotation with the offline root: the next key in the KMS, its CSR
	// signed away from the server, the certificate installed.
	dir := t.TempDir()
	csrFile, interFile := filepath.Join(dir, "next.csr"), filepath.Join(dir, "next.pem")
	if out, err := zdps(t, "ca", "rotate", "--data-dir", dataDir, "--kms", uri, "--csr-out", csrFile); err != nil {
		t.Fatalf("zdps ca rotate --csr-out: %v\n%s", err, out)
	}
	if out, err := zdps(t, "ca", "sign-intermediate", "--root-cert", bundle, "--root-key", rootKeyFile, "--csr", csrFile, "--out", interFile); err != nil {
		t.Fatalf("zdps ca sign-intermediate: %v\n%s", err, out)
	}
	if out, err := exec.Command("openssl", "verify", "-CAfile", bundle, interFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify of the new intermediate: %v\n%s", err, out)
	}
	wrongKey := filepath.Join(dir, "wrong.key")
	if out, err := exec.Command("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", wrongKey).CombinedOutput(); err != nil {
		t.Fatalf("openssl ecparam: %v\n%s", err, out)
	}
	if out, err := zdps(t, "ca", "sign-intermediate", "--root-cert", bundle, "--root-key", wrongKey, "--csr", csrFile); err == nil || !strings.Contains(out, "does not match the root") {
		t.Fatalf("sign-intermediate with another key: %v\n%s", err, out)
	}
	if out, err := zdps(t, "ca", "rotate", "--data-dir", dataDir, "--kms", uri, "--intermediate-cert", interFile); err != nil || !strings.Contains(out, "ca.rotate") {
		t.Fatalf("zdps ca rotate --intermediate-cert: %v\n%s", err, out)
	}
	srv = zdpstest.StartIn(t, dataDir, "--ca-kms", uri)
	regID2 := "kms-dev-2"
	key2 := srv.SymmetricKeyEnrollment(regID2)
	res2, err := device.Register(t.Context(), device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: regID2, SymmetricKey: key2,
		GenerateKey: true, RootCAs: srv.RootCAs(),
	})
	if err != nil || res2.Status != "assigned" {
		t.Fatalf("registration after the rotation: %v %+v", err, res2)
	}
	if got := res2.IssuedCertificateChain[0].Issuer.CommonName; got != "zdps Intermediate CA 2" {
		t.Fatalf("issued by %q after the rotation", got)
	}
	// The first device renews with the certificate the outgoing
	// intermediate issued, and gets one from the new intermediate.
	opCert, err := res.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := device.Register(t.Context(), device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: regID, Certificate: &opCert,
		GenerateKey: true, RootCAs: srv.RootCAs(),
	})
	if err != nil || renewed.Status != "assigned" || renewed.IssuedCertificateChain[0].Issuer.CommonName != "zdps Intermediate CA 2" {
		t.Fatalf("renewal with a certificate of the outgoing intermediate: %v %+v", err, renewed)
	}
	if out, err := zdps(t, "ca", "export", "--data-dir", dataDir, "--out", bundle); err != nil {
		t.Fatalf("zdps ca export: %v\n%s", err, out)
	}
	leaf2 := filepath.Join(dir, "leaf2.pem")
	if err := os.WriteFile(leaf2, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: res2.IssuedCertificateChain[0].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	// Before and after: both verify against the bundle published now.
	for _, f := range []string{leaf, leaf2} {
		if out, err := exec.Command("openssl", "verify", "-purpose", "sslclient", "-CAfile", bundle, f).CombinedOutput(); err != nil {
			t.Fatalf("openssl verify %s after the rotation: %v\n%s", f, err, out)
		}
	}
	srv.Stop()
	st = readState(t, filepath.Join(dataDir, "zdps.db"))
	if _, ok := st["rootKey"]; ok || st["kms"] != wantKMS || st["previous"] == nil {
		t.Fatalf("state after the offline rotation: root key %v, kms %v, previous %v", ok, st["kms"], st["previous"] != nil)
	}

	// Without the KMS the server does not start, and says why.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zdpstest.Binary(t), "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--mqtt-listen", "off")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--ca-kms") {
		t.Fatalf("serve without --ca-kms: %v\n%s", err, out)
	}
}

// servedTLSKey is the public key of the server's TLS certificate.
func servedTLSKey(t *testing.T, srv *zdpstest.Server) *ecdsa.PublicKey {
	t.Helper()
	conn, err := tls.Dial("tcp", srv.Addr(), srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].PublicKey.(*ecdsa.PublicKey)
}

// readState is the CA state in a stopped server's bbolt store, as JSON.
func readState(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var raw []byte
	if err := b.View(t.Context(), func(tx store.Tx) error {
		it, err := tx.Get(t.Context(), ca.StateBucket, ca.StateKey)
		if err == nil {
			raw = bytes.Clone(it.Value)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTPMKMSEndToEnd: the CA's keys in a TPM (swtpm). The blobs tpmkms
// keeps are wrapped by that TPM: another TPM cannot load them.
func TestTPMKMSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs zdps serve and swtpm")
	}
	uri, _ := cakmstest.SWTPM(t)
	kmsEndToEnd(t, uri, "tpmkms")
}
