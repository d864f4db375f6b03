package dice_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"slices"
	"testing"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/attestation/dice/dicesim"
)

func i64(v int64) *int64 { return &v }

func newRoot(t *testing.T) *dicesim.Cert {
	t.Helper()
	root, err := dicesim.NewRoot("test root", []byte("dice cert_test root seed 0123456"))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func build(t *testing.T, root *dicesim.Cert, d dicesim.Device) *dicesim.Chain {
	t.Helper()
	if d.UDS == nil {
		d.UDS = bytes.Repeat([]byte{1}, 32)
	}
	if d.RegistrationID == "" {
		d.RegistrationID = "dev-1"
	}
	c, err := dicesim.Build(root, d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func verify(leaf *x509.Certificate, inter []*x509.Certificate, root *x509.Certificate) error {
	roots, pool := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(dice.AcceptUnderstood(root))
	for _, c := range inter {
		pool.AddCert(dice.AcceptUnderstood(c))
	}
	_, err := dice.AcceptUnderstood(leaf).Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func TestAcceptUnderstood(t *testing.T) {
	root := newRoot(t)
	fw := dicesim.Measure([]byte("fw"))
	l0 := dice.TcbInfo{Layer: i64(0), FWIDs: []dice.FWID{fw}}
	l1 := dice.TcbInfo{Layer: i64(1), SVN: i64(1), FWIDs: []dice.FWID{fw}}
	badValue := []byte{0x30, 0x03, 0x83, 0x01} // truncated
	cases := []struct {
		name   string
		dev    dicesim.Device
		wantOK bool
	}{
		{"critical TcbInfo and UEID", dicesim.Device{DeviceIDTcbInfo: &l0, UEID: []byte("0123456789"), AliasTcbInfos: []dice.TcbInfo{l1}, Critical: true}, true},
		{"critical MultiTcbInfo", dicesim.Device{AliasTcbInfos: []dice.TcbInfo{l1, l1}, Critical: true}, true},
		{"critical legacy RIoT", dicesim.Device{LegacyRIoT: true, AliasTcbInfos: []dice.TcbInfo{l1}, Critical: true}, true},
		{"non-critical", dicesim.Device{AliasTcbInfos: []dice.TcbInfo{l1}}, true},
		{"unknown critical extension", dicesim.Device{AliasTcbInfos: []dice.TcbInfo{l1}, Critical: true,
			AliasExtensions: []pkix.Extension{{Id: dicesim.OIDUnknownCritical, Critical: true, Value: []byte{5, 0}}}}, false},
		{"critical TcbInfo that does not parse", dicesim.Device{
			AliasExtensions: []pkix.Extension{{Id: dice.OIDTcbInfo, Critical: true, Value: badValue}}}, false},
		{"critical MultiTcbInfo that does not parse", dicesim.Device{
			AliasExtensions: []pkix.Extension{{Id: dice.OIDMultiTcbInfo, Critical: true, Value: []byte{0x30, 0x00}}}}, false},
		{"critical other DICE OID (not understood)", dicesim.Device{
			AliasExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 23, 133, 5, 4, 6}, Critical: true, Value: []byte{5, 0}}}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, root, tc.dev)
			before := slices.Clone(c.Alias.Cert.UnhandledCriticalExtensions)
			err := verify(c.Alias.Cert, []*x509.Certificate{c.DeviceID.Cert}, root.Cert)
			if (err == nil) != tc.wantOK {
				t.Fatalf("verify: %v, want ok=%v", err, tc.wantOK)
			}
			if !tc.wantOK {
				var u x509.UnhandledCriticalExtension
				if !errors.As(err, &u) {
					t.Fatalf("want UnhandledCriticalExtension, got %v", err)
				}
			}
			if !slices.EqualFunc(before, c.Alias.Cert.UnhandledCriticalExtensions, asn1.ObjectIdentifier.Equal) {
				t.Fatal("AcceptUnderstood modified the certificate it was given")
			}
		})
	}
}

func TestState(t *testing.T) {
	root := newRoot(t)
	fw := dicesim.Measure([]byte("fw"))
	l0 := dice.TcbInfo{Vendor: "v", Layer: i64(0), FWIDs: []dice.FWID{fw}}
	l1 := dice.TcbInfo{Vendor: "v", Layer: i64(1), SVN: i64(4), FWIDs: []dice.FWID{fw}, Flags: asn1.BitString{Bytes: []byte{0x10}, BitLength: 4}}

	c := build(t, root, dicesim.Device{DeviceIDTcbInfo: &l0, UEID: []byte{9, 9, 9, 9, 9, 9, 9}, AliasTcbInfos: []dice.TcbInfo{l1}})
	st, err := dice.State([]*x509.Certificate{c.Alias.Cert, c.DeviceID.Cert, root.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if st.DeviceIDKey != dice.KeyID(c.DeviceID.Cert.RawSubjectPublicKeyInfo) || st.UEID != "09090909090909" {
		t.Errorf("identity %+v", st)
	}
	if len(st.Measurements) != 2 || *st.Measurements[0].Layer != 1 || *st.Measurements[1].Layer != 0 {
		t.Fatalf("measurements leaf first: %+v", st.Measurements)
	}
	m := st.Measurements[0]
	if *m.SVN != 4 || m.FWIDs[0].HashAlg != "sha256" || len(m.FWIDs[0].Digest) != 64 || !slices.Equal(m.Flags, []string{"debug"}) {
		t.Errorf("measurement %+v", m)
	}

	// The same device after a firmware update: same DeviceID key, new Alias key.
	l1b := l1
	l1b.FWIDs = []dice.FWID{dicesim.Measure([]byte("fw v2"))}
	c2 := build(t, root, dicesim.Device{DeviceIDTcbInfo: &l0, AliasTcbInfos: []dice.TcbInfo{l1b}})
	if !bytes.Equal(c2.DeviceID.Cert.RawSubjectPublicKeyInfo, c.DeviceID.Cert.RawSubjectPublicKeyInfo) {
		t.Error("a firmware update changed the DeviceID key")
	}
	if bytes.Equal(c2.Alias.Cert.RawSubjectPublicKeyInfo, c.Alias.Cert.RawSubjectPublicKeyInfo) {
		t.Error("a firmware update kept the Alias key")
	}

	// Only the Alias carries DICE: the DeviceID is the leaf's issuer.
	c3 := build(t, root, dicesim.Device{AliasTcbInfos: []dice.TcbInfo{l1}})
	st3, err := dice.State([]*x509.Certificate{c3.Alias.Cert, c3.DeviceID.Cert, root.Cert})
	if err != nil || st3.DeviceIDKey != dice.KeyID(c3.DeviceID.Cert.RawSubjectPublicKeyInfo) {
		t.Errorf("fallback DeviceID: %+v %v", st3, err)
	}
	// No DICE extension at all: nil.
	if st, err := dice.State([]*x509.Certificate{root.Cert}); st != nil || err != nil {
		t.Errorf("plain X.509: %+v %v", st, err)
	}
	// Legacy RIoT is recorded as such, with no measurement.
	c4 := build(t, root, dicesim.Device{LegacyRIoT: true})
	st4, err := dice.State([]*x509.Certificate{c4.Alias.Cert, c4.DeviceID.Cert, root.Cert})
	if err != nil || !st4.LegacyRIoT || len(st4.Measurements) != 0 {
		t.Errorf("legacy: %+v %v", st4, err)
	}
	// A malformed (non-critical) DICE extension is an error.
	c5 := build(t, root, dicesim.Device{AliasExtensions: []pkix.Extension{{Id: dice.OIDUeid, Value: []byte{0x30, 0x00}}}})
	if _, err := dice.State([]*x509.Certificate{c5.Alias.Cert}); !errors.Is(err, dice.ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}
}
