package bench_test

// Benchmarks of the bare primitives a registration is made of, the floor
// under the pipeline's own benchmarks:
//
//	TLS handshake  BenchmarkTLSHandshake (P-256 server certificate, loopback,
//	               full handshake, no resumption; per key exchange)
//	ECDSA          BenchmarkECDSAP256Sign, BenchmarkECDSAP256Verify
//	fsync          BenchmarkFsyncWrite (4 KiB write + fdatasync)
//
// Run them together with the pipeline steps with `make perf` (see the
// README's Performance section) so that every figure comes from the same
// machine state.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serverCert is a P-256 certificate for 127.0.0.1 signed by a P-256 root,
// as zdps serve issues its own, and the pool trusting it.
func serverCert(b *testing.B) (tls.Certificate, *x509.CertPool) {
	b.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		b.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return tls.Certificate{Certificate: [][]byte{der, rootDER}, PrivateKey: key}, pool
}

// BenchmarkTLSHandshake is one full TLS 1.3 handshake over loopback TCP,
// client and server in this process (so ns/op is the CPU of both ends on
// a busy machine), with zdps serve's server settings (client certificate
// requested, not required) and a new TCP connection each time.
func BenchmarkTLSHandshake(b *testing.B) {
	cert, pool := serverCert(b)
	for _, kx := range []struct {
		name   string
		curves []tls.CurveID
	}{
		{"x25519", []tls.CurveID{tls.X25519}},
		{"p256", []tls.CurveID{tls.CurveP256}},
		{"x25519mlkem768", []tls.CurveID{tls.X25519MLKEM768}},
	} {
		b.Run(kx.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						tc := tls.Server(c, srvCfg)
						_ = tc.Handshake()
						_, _ = io.Copy(io.Discard, tc)
						tc.Close()
					}()
				}
			}()
			cliCfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", CurvePreferences: kx.curves, SessionTicketsDisabled: true}
			b.ReportAllocs()
			for b.Loop() {
				c, err := tls.Dial("tcp", ln.Addr().String(), cliCfg)
				if err != nil {
					b.Fatal(err)
				}
				if c.ConnectionState().DidResume {
					b.Fatal("resumed")
				}
				c.Close()
			}
		})
	}
}

func benchKey(b *testing.B) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// BenchmarkECDSAP256Sign is one P-256 signature (crypto/ecdsa, hedged).
func BenchmarkECDSAP256Sign(b *testing.B) {
	k := benchKey(b)
	h := sha256.Sum256([]byte("tbs"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ecdsa.SignASN1(rand.Reader, k, h[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkECDSAP256Verify is one P-256 verification: a CSR's proof of
// possession, a chain link, x509.CreateCertificate's check of its own
// signature.
func BenchmarkECDSAP256Verify(b *testing.B) {
	k := benchKey(b)
	h := sha256.Sum256([]byte("tbs"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.VerifyASN1(&k.PublicKey, h[:], sig) {
			b.Fatal("verify failed")
		}
	}
}

// BenchmarkFsyncWrite is a 4 KiB write at the end of a file followed by
// fdatasync (File.Sync is fsync; bbolt uses fdatasync on Linux, and
// commits with two of them: data pages, then the meta page). The file is
// in the test's temporary directory: run on the disk zdps uses (TMPDIR).
func BenchmarkFsyncWrite(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Write(page); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
}
