package x509

import (
	"bytes"
	"context"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/attestation/dice/dicesim"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestVerifyDICE covers what DICE chains add to the walk: critical DICE
// extensions verify, unknown critical ones do not, an individual
// enrollment may name the DeviceID certificate, and Result.Chain is the
// verified path.
func TestVerifyDICE(t *testing.T) {
	root, err := dicesim.NewRoot("DICE test root", []byte("x509 dice_test root seed 0123456"))
	if err != nil {
		t.Fatal(err)
	}
	l1 := int64(1)
	build := func(regID string, mod func(*dicesim.Device)) *dicesim.Chain {
		d := dicesim.Device{UDS: bytes.Repeat([]byte(regID), 4), RegistrationID: regID, Critical: true, UEID: []byte("ueid-123"),
			AliasTcbInfos: []dice.TcbInfo{{Layer: &l1, FWIDs: []dice.FWID{dicesim.Measure([]byte("fw"))}}}}
		if mod != nil {
			mod(&d)
		}
		c, err := dicesim.Build(root, d)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ok := build("dice-ok", nil)
	unknown := build("dice-unknown", func(d *dicesim.Device) {
		d.AliasExtensions = []pkix.Extension{{Id: dicesim.OIDUnknownCritical, Critical: true, Value: []byte{5, 0}}}
	})
	ind := build("dice-ind", nil)
	other := build("dice-ind", func(d *dicesim.Device) { d.UDS = bytes.Repeat([]byte{7}, 32) })

	l := newFakeLookup()
	l.groups = append(l.groups, &enrollment.EnrollmentGroup{EnrollmentGroupID: "dice", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
		Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{SigningCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: string(root.PEM())}}},
	}}})
	l.enrollments["dice-ind"] = &enrollment.IndividualEnrollment{RegistrationID: "dice-ind", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
		Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{ClientCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: string(ind.DeviceID.PEM())}}},
	}}}
	// The simulator's certificates are valid from 2025 on; testNow is 2030.
	v := newVerifier(t, l)
	ctx := context.Background()
	chain := func(c *dicesim.Chain) []*stdx509.Certificate {
		return []*stdx509.Certificate{c.Alias.Cert, c.DeviceID.Cert}
	}

	res, err := v.Verify(ctx, "dice-ok", chain(ok))
	if err != nil {
		t.Fatalf("critical DICE extensions: %v", err)
	}
	if res.Group == nil || len(res.Chain) != 3 || !bytes.Equal(res.Chain[1].Raw, ok.DeviceID.Cert.Raw) || !bytes.Equal(res.Chain[2].Raw, root.Cert.Raw) {
		t.Fatalf("Result.Chain is not the verified path: %+v", res)
	}
	if len(ok.Alias.Cert.UnhandledCriticalExtensions) == 0 {
		t.Fatal("Verify modified the presented certificate")
	}

	if _, err := v.Verify(ctx, "dice-unknown", chain(unknown)); !errors.Is(err, ErrChain) {
		t.Fatalf("unknown critical extension: %v, want ErrChain", err)
	}

	res, err = v.Verify(ctx, "dice-ind", chain(ind))
	if err != nil || res.Enrollment == nil || len(res.Chain) != 2 || !bytes.Equal(res.Anchor.Raw, ind.DeviceID.Cert.Raw) {
		t.Fatalf("individual enrollment naming the DeviceID certificate: %+v %v", res, err)
	}
	// Another device's DeviceID does not match the enrollment, and the
	// group does not take over an individually enrolled device.
	if _, err := v.Verify(ctx, "dice-ind", chain(other)); !errors.Is(err, ErrChain) {
		t.Fatalf("other DeviceID: %v, want ErrChain", err)
	}
	// A device that sends the Alias alone verifies to the named DeviceID.
	if res, err := v.Verify(ctx, "dice-ind", []*stdx509.Certificate{ind.Alias.Cert}); err != nil || len(res.Chain) != 2 {
		t.Fatalf("the Alias alone: %+v %v", res, err)
	}
}
