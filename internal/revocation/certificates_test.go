package revocation_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestCertificatePruner: certificates that expired more than the
// retention ago go, revoked or not, with their index entries; unexpired
// ones and those within the retention stay, and a revoked one leaves the
// CRL before its record leaves the store.
func TestCertificatePruner(t *testing.T) {
	const keep = time.Hour
	tests := []struct {
		name    string
		expiry  time.Duration // NotAfter relative to now; 0: none
		revoked bool
		pruned  bool
		onCRL   bool
	}{
		{name: "unexpired", expiry: time.Second},
		{name: "unexpired, revoked", expiry: time.Second, revoked: true, onCRL: true},
		{name: "expires now, within retention", expiry: -time.Nanosecond},
		{name: "expired, revoked, within retention", expiry: -keep + time.Second, revoked: true, onCRL: true},
		{name: "expired past retention", expiry: -keep, pruned: true},
		{name: "expired past retention, revoked", expiry: -keep - time.Hour, revoked: true, pruned: true},
		{name: "no NotAfter", expiry: 0},
	}
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
			st := store.New(be.Open(t), clk.now)
			certs := revocation.Certificates(st.Backend, clk.now)
			rev, err := revocation.NewRevocations(st, revocation.RevocationConfig{Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			now := clk.now()
			for i, tc := range tests {
				c := &enrollment.Certificate{Serial: fmt.Sprintf("%032x", i+1), RegistrationID: fmt.Sprintf("dev-%d", i), DeviceID: "d"}
				if tc.expiry != 0 {
					c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(tc.expiry)
				}
				if tc.revoked {
					at := now.Add(-2 * time.Hour)
					c.RevokedAt, c.RevocationReason = &at, revocation.ReasonCessationOfOperation
				}
				if _, err := certs.Put(ctx, c, store.Condition{IfNoneMatch: true}); err != nil {
					t.Fatal(err)
				}
			}
			authority := newTestCA(t, clk.now)
			pub, err := revocation.NewCRLPublisher(rev, caCRL{authority}, keep)
			if err != nil {
				t.Fatal(err)
			}
			listed := func() map[string]int {
				der, err := pub.CRL(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return serials(parseCRL(t, authority, der))
			}
			crlBefore := listed()

			p, err := revocation.NewCertificatePruner(st.Backend, keep)
			if err != nil {
				t.Fatal(err)
			}
			n, err := p.PruneExpired(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			left := keys(t, st.Backend, revocation.BucketCertificates)
			wantPruned, wantRevokedIndex, wantRegIndex := 0, 0, 0
			for i, tc := range tests {
				sn := fmt.Sprintf("%032x", i+1)
				if slices.Contains(left, sn) == tc.pruned {
					t.Errorf("%s: pruned = %v, want %v", tc.name, !tc.pruned, tc.pruned)
				}
				if _, ok := crlBefore[sn]; ok != tc.onCRL {
					t.Errorf("%s: on the CRL = %v, want %v", tc.name, ok, tc.onCRL)
				}
				switch {
				case tc.pruned:
					wantPruned++
				default:
					wantRegIndex++
					if tc.revoked {
						wantRevokedIndex++
						if ok, err := rev.IsRevoked(ctx, sn); err != nil || !ok {
							t.Errorf("%s: IsRevoked = %v, %v", tc.name, ok, err)
						}
					}
				}
			}
			if n != wantPruned {
				t.Errorf("pruned %d, want %d", n, wantPruned)
			}
			if got := count(t, st.Backend, revocation.IndexCertificatesRevoked); got != wantRevokedIndex {
				t.Errorf("%d revoked-index entries, want %d", got, wantRevokedIndex)
			}
			if got := count(t, st.Backend, revocation.IndexCertificatesByRegistration); got != wantRegIndex {
				t.Errorf("%d registration-index entries, want %d", got, wantRegIndex)
			}
			if n, err := p.PruneExpired(ctx, now); err != nil || n != 0 {
				t.Errorf("second prune: %d, %v; want 0, nil", n, err)
			}
			if _, err := revocation.NewCertificatePruner(st.Backend, -time.Second); err == nil {
				t.Error("negative retention accepted")
			}
		})
	}
}

func keys(t testing.TB, b store.Backend, bucket store.Bucket) []string {
	return testbackend.Keys(t, b, bucket)
}

func count(t testing.TB, b store.Backend, bucket store.Bucket) int { return len(keys(t, b, bucket)) }
