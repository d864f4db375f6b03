package x509

import (
	"context"
	stdx509 "crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// A forged CA with the group's subject and subject key identifier but
// another key: its leaves name the group's key as their authority key, so
// the walk picks the group as a candidate without checking a signature
// (mayHaveIssued), and the chain verification must then refuse them.
func TestForgedAuthorityKeyIDRefused(t *testing.T) {
	root := newCA(t, "Fleet Root", nil)
	forgedTmpl := caTemplate("Fleet Root")
	forgedTmpl.SubjectKeyId = root.cert.SubjectKeyId
	forged := issue(t, forgedTmpl, nil)
	if string(forged.cert.RawSubject) != string(root.cert.RawSubject) {
		t.Fatal("forged CA does not copy the subject")
	}
	leaf := newLeaf(t, "dev-forged", forged)
	if string(leaf.cert.AuthorityKeyId) != string(root.cert.SubjectKeyId) {
		t.Fatalf("leaf AKID %x, root SKID %x", leaf.cert.AuthorityKeyId, root.cert.SubjectKeyId)
	}
	l := newFakeLookup()
	l.addSigningGroup("fleet", enrollment.StatusEnabled, root)
	v, err := New(Config{Lookup: l, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for name, chain := range map[string][]*stdx509.Certificate{
		"leaf alone":           chainOf(leaf),
		"leaf and forged root": chainOf(leaf, forged),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := v.Verify(context.Background(), "dev-forged", chain)
			// Refused either as an unknown CA or as a chain that does not
			// verify to the group's certificate: both answer 401.
			if res != nil || !(errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrChain)) {
				t.Fatalf("got %+v, %v; want a refusal", res, err)
			}
		})
	}
	// The genuine leaf still provisions.
	if _, err := v.Verify(context.Background(), "dev-ok", chainOf(newLeaf(t, "dev-ok", root))); err != nil {
		t.Fatal(err)
	}
}
