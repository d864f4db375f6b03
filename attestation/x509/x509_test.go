package x509

import (
	"context"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

func TestVerify(t *testing.T) {
	root := newCA(t, "Root R", nil)
	inter := newCA(t, "Intermediate R1", root)
	other := newCA(t, "Other root", nil)
	otherInter := newCA(t, "Other intermediate", other)
	verifiedRoot := newCA(t, "Verified CA root", nil)
	verifiedInter := newCA(t, "Verified CA intermediate", verifiedRoot)
	unverifiedRoot := newCA(t, "Unverified CA root", nil)
	disabledRoot := newCA(t, "Disabled group root", nil)
	registeredRoot := newCA(t, "Registered root, group on it", nil)
	registeredInter := newCA(t, "Registered intermediate, no group", registeredRoot)
	expiredInter := issue(t, func() *stdx509.Certificate {
		c := caTemplate("Expired intermediate")
		c.NotBefore, c.NotAfter = testNow.Add(-48*time.Hour), testNow.Add(-24*time.Hour)
		return c
	}(), root)

	indLeaf := newLeaf(t, "dev-ind", root)
	indLeaf2 := newLeaf(t, "dev-ind", root)
	selfLeaf := newLeaf(t, "dev-self", nil)
	disabledIndLeaf := newLeaf(t, "dev-disabled", inter)

	l := newFakeLookup()
	l.addIndividual("dev-ind", "", indLeaf, indLeaf2)
	l.addIndividual("dev-self", "", selfLeaf)
	l.addIndividual("dev-disabled", enrollment.StatusDisabled, disabledIndLeaf)
	l.addIndividual("dev-other-cert", enrollment.StatusDisabled, newLeaf(t, "dev-other-cert", other))
	l.addIndividual("dev-taken", "", newLeaf(t, "dev-taken", root))
	l.addSigningGroup("g-root", "", root)
	l.addSigningGroup("g-disabled", enrollment.StatusDisabled, disabledRoot)
	l.addCA("verified-ca", verifiedRoot, true)
	l.addCA("unverified-ca", unverifiedRoot, false)
	l.addCA("registered-root", registeredRoot, true)
	l.addCA("registered-inter", registeredInter, true)
	l.addCAGroup("g-ca", "", "verified-ca")
	l.addCAGroup("g-unverified", "", "unverified-ca")
	l.addCAGroup("g-registered", "", "registered-root")
	v := newVerifier(t, l)

	long := strings.Repeat("a", 65)
	tooLong := []*certKey{newLeaf(t, "dev-long", inter)}
	for range MaxChainLength {
		tooLong = append(tooLong, inter)
	}
	twoCNs := newLeaf(t, "dev-2cn", inter, func(c *stdx509.Certificate) {
		c.Subject = pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: oidCommonName, Value: "dev-2cn"}, {Type: oidCommonName, Value: "dev-other"},
		}}
	})

	cases := []struct {
		name       string
		regID      string
		chain      []*certKey
		want       error  // sentinel, nil for success
		enrollment string // registration ID of the matched individual enrollment
		group      string // ID of the matched group
		caName     string
	}{
		{name: "individual leaf, primary", regID: "dev-ind", chain: []*certKey{indLeaf}, enrollment: "dev-ind"},
		{name: "individual leaf, secondary", regID: "dev-ind", chain: []*certKey{indLeaf2}, enrollment: "dev-ind"},
		{name: "individual leaf, registration ID in other case", regID: "DEV-IND", chain: []*certKey{indLeaf}, enrollment: "dev-ind"},
		{name: "self-signed individual leaf", regID: "dev-self", chain: []*certKey{selfLeaf}, enrollment: "dev-self"},
		{name: "leaf and intermediate under a group's signing root", regID: "dev-g1", chain: []*certKey{newLeaf(t, "dev-g1", inter), inter}, group: "g-root"},
		{name: "leaf alone signed by the group's signing root", regID: "dev-g2", chain: []*certKey{newLeaf(t, "dev-g2", root)}, group: "g-root"},
		{name: "leaf, intermediate and root presented", regID: "dev-g3", chain: []*certKey{newLeaf(t, "dev-g3", inter), inter, root}, group: "g-root"},
		{name: "group via verified caReference", regID: "dev-ca1", chain: []*certKey{newLeaf(t, "dev-ca1", verifiedInter), verifiedInter}, group: "g-ca", caName: "verified-ca"},
		{name: "group via a registered CA above a registered intermediate", regID: "dev-reg", chain: []*certKey{newLeaf(t, "dev-reg", registeredInter)}, group: "g-registered", caName: "registered-root"},
		{name: "unverified CA refused", regID: "dev-unv", chain: []*certKey{newLeaf(t, "dev-unv", unverifiedRoot)}, want: ErrCANotVerified},
		{name: "disabled individual matching the leaf under an enabled group", regID: "dev-disabled", chain: []*certKey{disabledIndLeaf, inter}, enrollment: "dev-disabled"},
		{name: "disabled individual with another certificate: the group is reported", regID: "dev-other-cert", chain: []*certKey{newLeaf(t, "dev-other-cert", inter), inter}, group: "g-root"},
		{name: "enabled individual with another certificate refuses the group", regID: "dev-taken", chain: []*certKey{newLeaf(t, "dev-taken", inter), inter}, want: ErrUnauthorized},
		{name: "disabled group is reported", regID: "dev-dis", chain: []*certKey{newLeaf(t, "dev-dis", disabledRoot)}, group: "g-disabled"},
		{name: "unknown CA", regID: "dev-unknown", chain: []*certKey{newLeaf(t, "dev-unknown", otherInter), otherInter}, want: ErrUnauthorized},
		{name: "unknown self-signed leaf", regID: "dev-lonely", chain: []*certKey{newLeaf(t, "dev-lonely", nil)}, want: ErrUnauthorized},
		{name: "expired leaf", regID: "dev-exp", want: ErrExpired, chain: []*certKey{newLeaf(t, "dev-exp", inter, func(c *stdx509.Certificate) {
			c.NotBefore, c.NotAfter = testNow.Add(-48*time.Hour), testNow.Add(-time.Second)
		}), inter}},
		{name: "not yet valid leaf", regID: "dev-future", want: ErrExpired, chain: []*certKey{newLeaf(t, "dev-future", inter, func(c *stdx509.Certificate) {
			c.NotBefore, c.NotAfter = testNow.Add(time.Hour), testNow.Add(48*time.Hour)
		}), inter}},
		{name: "expired intermediate", regID: "dev-expi", chain: []*certKey{newLeaf(t, "dev-expi", expiredInter), expiredInter}, want: ErrExpired},
		{name: "CN differs from the registration ID", regID: "dev-b", chain: []*certKey{newLeaf(t, "dev-a", inter), inter}, want: ErrCNMismatch},
		{name: "CN longer than 64 characters", regID: long, chain: []*certKey{newLeaf(t, long, inter), inter}, want: ErrCNMismatch},
		{name: "two CNs", regID: "dev-2cn", chain: []*certKey{twoCNs, inter}, want: ErrMalformed},
		{name: "KeyUsage without digitalSignature", regID: "dev-ku", want: ErrKeyUsage, chain: []*certKey{newLeaf(t, "dev-ku", inter, func(c *stdx509.Certificate) {
			c.KeyUsage = stdx509.KeyUsageKeyEncipherment
		}), inter}},
		{name: "ExtKeyUsage serverAuth only", regID: "dev-eku", want: ErrKeyUsage, chain: []*certKey{newLeaf(t, "dev-eku", inter, func(c *stdx509.Certificate) {
			c.ExtKeyUsage = []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageServerAuth}
		}), inter}},
		{name: "ExtKeyUsage any is not enough", regID: "dev-any", want: ErrKeyUsage, chain: []*certKey{newLeaf(t, "dev-any", inter, func(c *stdx509.Certificate) {
			c.ExtKeyUsage = []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageAny}
		}), inter}},
		{name: "no KeyUsage and no ExtKeyUsage is accepted", regID: "dev-plain", group: "g-root", chain: []*certKey{newLeaf(t, "dev-plain", inter, func(c *stdx509.Certificate) {
			c.KeyUsage, c.ExtKeyUsage = 0, nil
		}), inter}},
		{name: "chain longer than the cap", regID: "dev-long", chain: tooLong, want: ErrMalformed},
		{name: "no certificate", regID: "dev-none", chain: nil, want: ErrMalformed},
		{name: "intermediate of another CA under the group's root", regID: "dev-mix", chain: []*certKey{newLeaf(t, "dev-mix", otherInter), inter}, want: ErrChain},
		// The walk goes up the chain as presented: a garbage intermediate hides the group.
		{name: "leaf signed by the group root, with an unrelated intermediate", regID: "dev-mix2", chain: []*certKey{newLeaf(t, "dev-mix2", root), otherInter}, want: ErrUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := v.Verify(context.Background(), tc.regID, chainOf(tc.chain...))
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if res != nil {
					t.Fatalf("a refusal came with a result: %+v", res)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			switch {
			case tc.enrollment != "":
				if res.Enrollment == nil || res.Group != nil || res.Enrollment.RegistrationID != tc.enrollment {
					t.Fatalf("want individual enrollment %q, got %+v", tc.enrollment, res)
				}
			case tc.group != "":
				if res.Group == nil || res.Enrollment != nil || res.Group.EnrollmentGroupID != tc.group {
					t.Fatalf("want group %q, got enrollment %v group %v", tc.group, res.Enrollment, res.Group)
				}
				if res.Anchor == nil {
					t.Error("a group match without an anchor")
				}
			}
			if res.CAName != tc.caName {
				t.Errorf("CAName = %q, want %q", res.CAName, tc.caName)
			}
			if res.Leaf != tc.chain[0].cert {
				t.Error("Leaf is not the presented leaf")
			}
		})
	}
}

// A certificate two groups name: the disabled one wins, so disabling a
// group always revokes its devices.
func TestVerifyDisabledGroupWins(t *testing.T) {
	root := newCA(t, "Shared root", nil)
	for _, order := range [][]string{{"", enrollment.StatusDisabled}, {enrollment.StatusDisabled, ""}} {
		l := newFakeLookup()
		l.addSigningGroup("g-1", order[0], root)
		l.addSigningGroup("g-2", order[1], root)
		res, err := newVerifier(t, l).Verify(context.Background(), "dev", chainOf(newLeaf(t, "dev", root)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Group.Enabled() {
			t.Errorf("order %q: enabled group %q chosen over a disabled one", order, res.Group.EnrollmentGroupID)
		}
	}
}

// The first certificate above the leaf that a group names decides, even
// when a group names a certificate further up.
func TestVerifyFirstGroupUpTheChain(t *testing.T) {
	root := newCA(t, "Root", nil)
	inter := newCA(t, "Intermediate", root)
	l := newFakeLookup()
	l.addSigningGroup("g-root", "", root)
	l.addSigningGroup("g-inter", enrollment.StatusDisabled, inter)
	res, err := newVerifier(t, l).Verify(context.Background(), "dev", chainOf(newLeaf(t, "dev", inter), inter))
	if err != nil {
		t.Fatal(err)
	}
	if res.Group.EnrollmentGroupID != "g-inter" {
		t.Fatalf("group %q, want g-inter (the nearer one)", res.Group.EnrollmentGroupID)
	}
}

func TestVerifyIndividualCAReference(t *testing.T) {
	ca := newCA(t, "Individual CA", nil)
	l := newFakeLookup()
	l.addCA("ind-ca", ca, true)
	l.enrollments["dev-ref"] = &enrollment.IndividualEnrollment{
		RegistrationID: "dev-ref", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			CAReferences: &enrollment.X509CAReferences{Primary: "missing-ca", Secondary: "ind-ca"},
		}}},
	}
	v := newVerifier(t, l)
	res, err := v.Verify(context.Background(), "dev-ref", chainOf(newLeaf(t, "dev-ref", ca)))
	if err != nil || res.Enrollment == nil || res.CAName != "ind-ca" {
		t.Fatalf("res %+v err %v", res, err)
	}
	_, err = v.Verify(context.Background(), "dev-ref", chainOf(newLeaf(t, "dev-ref", newCA(t, "Stranger", nil))))
	if !errors.Is(err, ErrChain) {
		t.Fatalf("a chain from another CA: err = %v, want ErrChain", err)
	}
}

func TestVerifyLookupFailureIsNotARefusal(t *testing.T) {
	l := newFakeLookup()
	l.err = errors.New("disk on fire")
	root := newCA(t, "Root", nil)
	_, err := newVerifier(t, l).Verify(context.Background(), "dev", chainOf(newLeaf(t, "dev", root)))
	if err == nil || !errors.Is(err, l.err) {
		t.Fatalf("err = %v, want the lookup's error", err)
	}
	for _, s := range []error{ErrUnauthorized, ErrMalformed, ErrCNMismatch, ErrExpired, ErrKeyUsage, ErrChain, ErrCANotVerified} {
		if errors.Is(err, s) {
			t.Errorf("a lookup failure wraps the refusal %v", s)
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a Lookup succeeded")
	}
}
