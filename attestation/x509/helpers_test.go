package x509

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// testNow is the clock of every test.
var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// certKey is a certificate with its key.
type certKey struct {
	cert *stdx509.Certificate
	key  crypto.Signer
}

func (c *certKey) PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}))
}

var serial atomic.Int64

// issue signs tmpl with parent (self-signed when parent is nil), filling in
// a fresh P-256 key, a serial and a default validity around testNow.
func issue(t testing.TB, tmpl *stdx509.Certificate, parent *certKey) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = testNow.Add(365 * 24 * time.Hour)
	}
	signer, parentCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := stdx509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stdx509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certKey{cert: c, key: key}
}

func caTemplate(cn string) *stdx509.Certificate {
	return &stdx509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              stdx509.KeyUsageCertSign | stdx509.KeyUsageCRLSign,
	}
}

func newCA(t testing.TB, cn string, parent *certKey) *certKey {
	return issue(t, caTemplate(cn), parent)
}

func leafTemplate(cn string) *stdx509.Certificate {
	return &stdx509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		BasicConstraintsValid: true,
		KeyUsage:              stdx509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageClientAuth},
	}
}

func newLeaf(t testing.TB, cn string, parent *certKey, mod ...func(*stdx509.Certificate)) *certKey {
	tmpl := leafTemplate(cn)
	for _, m := range mod {
		m(tmpl)
	}
	return issue(t, tmpl, parent)
}

func chainOf(cs ...*certKey) []*stdx509.Certificate {
	out := make([]*stdx509.Certificate, len(cs))
	for i, c := range cs {
		out[i] = c.cert
	}
	return out
}

// fakeLookup is an in-memory Lookup that indexes with the same functions
// as the store.
type fakeLookup struct {
	enrollments map[string]*enrollment.IndividualEnrollment
	groups      []*enrollment.EnrollmentGroup
	cas         []*enrollment.CACertificate
	err         error
}

func newFakeLookup() *fakeLookup {
	return &fakeLookup{enrollments: map[string]*enrollment.IndividualEnrollment{}}
}

func (f *fakeLookup) IndividualEnrollment(_ context.Context, id string) (*enrollment.IndividualEnrollment, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.enrollments[strings.ToLower(id)], nil
}

func (f *fakeLookup) GroupsByKey(_ context.Context, key string) ([]*enrollment.EnrollmentGroup, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []*enrollment.EnrollmentGroup
	for _, g := range f.groups {
		if slices.Contains(g.X509IndexKeys(), strings.ToLower(key)) {
			out = append(out, g)
		}
	}
	return out, nil
}

func (f *fakeLookup) CACertificate(_ context.Context, name string) (*enrollment.CACertificate, error) {
	if f.err != nil {
		return nil, f.err
	}
	for _, c := range f.cas {
		if strings.EqualFold(c.Name, name) {
			return c, nil
		}
	}
	return nil, nil
}

func (f *fakeLookup) CACertificatesByKey(_ context.Context, key string) ([]*enrollment.CACertificate, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []*enrollment.CACertificate
	for _, c := range f.cas {
		if slices.Contains(c.IndexKeys(), strings.ToLower(key)) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeLookup) addIndividual(id, status string, certs ...*certKey) {
	x := &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: certs[0].PEM()}}
	if len(certs) > 1 {
		x.Secondary = &enrollment.X509CertificateWithInfo{Certificate: certs[1].PEM()}
	}
	f.enrollments[strings.ToLower(id)] = &enrollment.IndividualEnrollment{
		RegistrationID: id, Spec: enrollment.Spec{ProvisioningStatus: status,
			Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{ClientCertificates: x}}},
	}
}

func (f *fakeLookup) addSigningGroup(id, status string, certs ...*certKey) {
	x := &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: certs[0].PEM()}}
	if len(certs) > 1 {
		x.Secondary = &enrollment.X509CertificateWithInfo{Certificate: certs[1].PEM()}
	}
	f.groups = append(f.groups, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: id, Spec: enrollment.Spec{ProvisioningStatus: status,
			Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{SigningCertificates: x}}},
	})
}

func (f *fakeLookup) addCAGroup(id, status, caName string) {
	f.groups = append(f.groups, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: id, Spec: enrollment.Spec{ProvisioningStatus: status,
			Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
				CAReferences: &enrollment.X509CAReferences{Primary: caName},
			}}},
	})
}

func (f *fakeLookup) addCA(name string, c *certKey, verified bool) {
	f.cas = append(f.cas, &enrollment.CACertificate{Name: name, Certificate: c.PEM(), IsVerified: verified})
}

func newVerifier(t testing.TB, l Lookup) *Verifier {
	t.Helper()
	v, err := New(Config{Lookup: l, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
