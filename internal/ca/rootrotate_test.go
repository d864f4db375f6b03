package ca_test

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/ca/rotation"
	"github.com/zdps/zdps/internal/store/memory"
)

func TestRotateRoot(t *testing.T) {
	clock := ca.NewFakeClock(time.Now())
	cfg := ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: ca.TestKEK(t), Now: clock.Now}
	c, err := ca.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := c.Root()
	before := ca.IssueTest(t, c, "dev-before")
	r, err := rotation.RotateRoot(t.Context(), cfg, rotation.RotateOptions{Overlap: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := c.Reload(t.Context()); !changed || err != nil {
		t.Fatalf("reload after a root rotation: %v %v", changed, err)
	}
	if !c.Root().Equal(r.NewRoot) || len(c.Cross()) != 1 || !c.Cross()[0].Equal(r.Cross) || len(c.PreviousRoots()) != 1 || !c.PreviousRoots()[0].Certificate.Equal(oldRoot) {
		t.Fatal("the CA did not take the new root")
	}
	after := ca.IssueTest(t, c, "dev-after")
	if err := r.Cross.CheckSignatureFrom(oldRoot); err != nil {
		t.Fatalf("the cross certificate is not the old root's: %v", err)
	}
	inters := ca.BundleIntermediates(t, c, oldRoot, r.NewRoot)
	// Whoever trusts only the old root accepts both, the new one through
	// the cross certificate; whoever trusts only the new root accepts the
	// new one.
	for _, tc := range []struct {
		name string
		root *x509.Certificate
		leaf *x509.Certificate
		ok   bool
	}{
		{"old root, old leaf", oldRoot, before, true},
		{"old root, new leaf (cross)", oldRoot, after, true},
		{"new root, new leaf", r.NewRoot, after, true},
		{"new root, old leaf", r.NewRoot, before, false},
	} {
		roots := x509.NewCertPool()
		roots.AddCert(tc.root)
		_, err := tc.leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if (err == nil) != tc.ok {
			t.Errorf("%s: verify err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	// Renewal trusts both roots during the overlap.
	for _, leaf := range []*x509.Certificate{before, after} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("Roots() refuses %s: %v", leaf.Subject.CommonName, err)
		}
	}
	// The old intermediate still signs its CRL.
	der, err := c.PreviousCRL(r.Old, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if crl, _ := x509.ParseRevocationList(der); crl == nil || crl.CheckSignatureFrom(r.Old) != nil {
		t.Fatal("old intermediate's CRL")
	}
	// A fresh process loads it; an intermediate rotation keeps the old root.
	if _, err := ca.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	// An intermediate rotation during the root's overlap is cross-signed
	// by the old root too: its leaves verify for old-root-only trusters.
	if _, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{Overlap: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reload(t.Context()); err != nil || len(c.PreviousRoots()) != 1 || len(c.Cross()) != 2 || len(c.Previous()) != 2 {
		t.Fatalf("after an intermediate rotation: %v, roots %d, cross %d, previous %d", err, len(c.PreviousRoots()), len(c.Cross()), len(c.Previous()))
	}
	third := ca.IssueTest(t, c, "dev-third")
	oldOnly := x509.NewCertPool()
	oldOnly.AddCert(oldRoot)
	for _, leaf := range []*x509.Certificate{before, after, third} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: oldOnly, Intermediates: ca.BundleIntermediates(t, c, oldRoot, r.NewRoot), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s against the old root alone: %v", leaf.Subject.CommonName, err)
		}
	}
	// After the overlap the next rotation retires the old root and its intermediate.
	clock.Set(clock.Now().Add(49 * time.Hour))
	rr, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{Overlap: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	retired := 0
	for _, s := range rr.Steps {
		if s.Action == "ca.retire" {
			retired++
		}
	}
	if _, err := c.Reload(t.Context()); err != nil || len(c.PreviousRoots()) != 0 || len(c.Cross()) != 0 || retired < 2 {
		t.Fatalf("after the overlap: %v, roots %d, cross %d, retired %d", err, len(c.PreviousRoots()), len(c.Cross()), retired)
	}
}

// A store writer who adds a root of their own to the previous roots is
// caught: the list is sealed under the KEK.
func TestPreviousRootsTampered(t *testing.T) {
	st := &ca.MapStorage{}
	cfg := ca.Config{Storage: st, KEK: ca.TestKEK(t)}
	if _, err := ca.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := rotation.RotateRoot(t.Context(), cfg, rotation.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	evil, _ := ca.NewTestCA(t, nil)
	var s castate.State
	if err := json.Unmarshal(st.Blob(), &s); err != nil {
		t.Fatal(err)
	}
	s.PreviousRoots = append(s.PreviousRoots, castate.PreviousRoot{Root: evil.Root().Raw, KeepUntil: time.Now().Add(time.Hour)})
	b, _ := json.Marshal(s)
	st.SetBlob(b)
	if _, err := ca.New(t.Context(), cfg); !errors.Is(err, ca.ErrCorruptState) {
		t.Fatalf("err = %v, want ErrCorruptState", err)
	}
}
