package x509

import (
	"context"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Benchmarks of the chain-verification step of X.509 attestation (lookup
// in memory, so the figure is the verifier's own CPU: parsing the group's
// signing certificate, x509 path building and the ECDSA verifications).

func benchVerifier(b *testing.B, l *fakeLookup) *Verifier {
	v, err := New(Config{Lookup: l, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkVerifyGroupLeaf: a leaf signed directly by a group's signing
// certificate (what zdps bench --attestation x509 sends): one ECDSA
// verification.
func BenchmarkVerifyGroupLeaf(b *testing.B) {
	root := newCA(b, "Bench Root", nil)
	l := newFakeLookup()
	l.addSigningGroup("bench", enrollment.StatusEnabled, root)
	v := benchVerifier(b, l)
	chain := chainOf(newLeaf(b, "bench-dev-1", root))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, "bench-dev-1", chain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyGroupIntermediate: leaf and intermediate presented, the
// root is the group's signing certificate: two ECDSA verifications.
func BenchmarkVerifyGroupIntermediate(b *testing.B) {
	root := newCA(b, "Bench Root", nil)
	inter := newCA(b, "Bench Intermediate", root)
	l := newFakeLookup()
	l.addSigningGroup("bench", enrollment.StatusEnabled, root)
	v := benchVerifier(b, l)
	chain := chainOf(newLeaf(b, "bench-dev-1", inter), inter)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, "bench-dev-1", chain); err != nil {
			b.Fatal(err)
		}
	}
}
