package x509

import (
	"context"
	stdx509 "crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// goldenNow is inside the validity of the golden chains in testdata/x509
// (2025 to 2125).
var goldenNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func readPEMs(t testing.TB, name string) []*stdx509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "x509", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []*stdx509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := stdx509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// encodeChain is the fuzz input format: each certificate as a 2-byte
// big-endian length and its DER.
func encodeChain(cs ...*stdx509.Certificate) []byte {
	var b []byte
	for _, c := range cs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.Raw)))
		b = append(b, c.Raw...)
	}
	return b
}

// decodeChain splits the fuzz input into DER blobs and keeps those that
// parse, as a TLS stack would hand them over.
func decodeChain(b []byte) []*stdx509.Certificate {
	var out []*stdx509.Certificate
	for len(b) >= 2 && len(out) < MaxChainLength+2 {
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if n > len(b) {
			n = len(b)
		}
		if c, err := stdx509.ParseCertificate(b[:n]); err == nil {
			out = append(out, c)
		}
		b = b[n:]
	}
	return out
}

var sentinels = []error{ErrUnauthorized, ErrMalformed, ErrCNMismatch, ErrExpired, ErrKeyUsage, ErrChain, ErrCANotVerified}

// FuzzVerifyChain feeds arbitrary DER as the presented chain to a verifier
// that knows the golden PKI. It must never panic; a success must name
// exactly one enrollment for a leaf whose CN is the registration ID; a
// refusal must wrap exactly one sentinel.
func FuzzVerifyChain(f *testing.F) {
	root := readPEMs(f, "root.pem")[0]
	chain := readPEMs(f, "chain.pem")
	self := readPEMs(f, "self.pem")[0]
	rootPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}))
	selfPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: self.Raw}))

	l := newFakeLookup()
	l.groups = append(l.groups, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "golden", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			SigningCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: rootPEM}},
		}}},
	}, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "golden-ca", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			CAReferences: &enrollment.X509CAReferences{Primary: "golden-root"},
		}}},
	})
	l.cas = append(l.cas, &enrollment.CACertificate{Name: "golden-root", Certificate: rootPEM, IsVerified: true})
	l.enrollments["golden-self"] = &enrollment.IndividualEnrollment{
		RegistrationID: "golden-self", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			ClientCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: selfPEM}},
		}}},
	}
	v, err := New(Config{Lookup: l, Now: func() time.Time { return goldenNow }})
	if err != nil {
		f.Fatal(err)
	}

	f.Add(encodeChain(chain...))
	f.Add(encodeChain(chain[0]))
	f.Add(encodeChain(chain[0], chain[1], root))
	f.Add(encodeChain(self))
	f.Add(encodeChain(chain[1], chain[0]))
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x03, 0x30, 0x01, 0x00})

	f.Fuzz(func(t *testing.T, data []byte) {
		certs := decodeChain(data)
		regID := "golden-device"
		if len(certs) > 0 && certs[0].Subject.CommonName != "" {
			regID = certs[0].Subject.CommonName
		}
		res, err := v.Verify(context.Background(), regID, certs)
		if err != nil {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("refusal wraps %d sentinels: %v", n, err)
			}
			if res != nil {
				t.Fatal("refusal with a result")
			}
			return
		}
		if (res.Enrollment == nil) == (res.Group == nil) {
			t.Fatalf("success must name exactly one enrollment: %+v", res)
		}
		if res.Leaf != certs[0] || !strings.EqualFold(res.Leaf.Subject.CommonName, regID) {
			t.Fatal("success for a leaf that is not the registration ID's")
		}
		if len(certs) > MaxChainLength {
			t.Fatal("success for a chain over the cap")
		}
	})
}

// The golden chain is what the seed corpus is built from; it must verify.
func TestGoldenChains(t *testing.T) {
	root := readPEMs(t, "root.pem")[0]
	chain := readPEMs(t, "chain.pem")
	l := newFakeLookup()
	l.addCA("golden-root", &certKey{cert: root}, true)
	l.addCAGroup("golden-ca", "", "golden-root")
	v, err := New(Config{Lookup: l, Now: func() time.Time { return goldenNow }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		chain []*stdx509.Certificate
	}{
		{"leaf and intermediate", chain},
		{"round trip through the fuzz encoding", decodeChain(encodeChain(chain...))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := v.Verify(context.Background(), "golden-device", tc.chain)
			if err != nil || res.Group == nil || res.Group.EnrollmentGroupID != "golden-ca" {
				t.Fatalf("res %+v err %v", res, err)
			}
		})
	}
}
