package revocation_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/postgres"
)

// TestConcurrentRevocationsPostgres revokes many registrations at once on
// PostgreSQL, as concurrent DELETE /registrations/{id} do: every one
// commits (no revoking transaction rewrites a row every other one
// rewrites), the next CRL lists every certificate, and publishing it
// clears the change markers.
func TestConcurrentRevocationsPostgres(t *testing.T) {
	url, schema := pgtest.Schema(t)
	pg, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st := store.New(pg, clk.now)
	rev, err := revocation.NewRevocations(st, revocation.RevocationConfig{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	e := &revEnv{st: st, rev: rev, certs: revocation.Certificates(st.Backend, clk.now), clk: clk}
	authority := newTestCA(t, clk.now)
	pub, err := revocation.NewCRLPublisher(rev, caCRL{authority}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := pub.CRL(ctx); err != nil { // the first CRL, before any revocation
		t.Fatal(err)
	}
	const n = 200
	serial := make([]string, n)
	for i := range n {
		serial[i] = e.register(t, fmt.Sprintf("dev-%04d", i), "")
	}
	before := pg.Retries()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pg.Update(ctx, func(tx store.Tx) error {
				_, err := rev.RevokeRegistrationTx(ctx, tx, fmt.Sprintf("dev-%04d", i), revocation.ReasonCessationOfOperation)
				return err
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("revocation %d: %v", i, err)
		}
	}
	t.Logf("%d concurrent revocations: %d retries", n, pg.Retries()-before)
	if got := len(keys(t, pg, revocation.BucketRevocationChanges)); got != n {
		t.Fatalf("%d change markers, want one per revoking transaction (%d)", got, n)
	}
	der, err := pub.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := serials(parseCRL(t, authority, der))
	for _, s := range serial {
		if listed[s] != revocation.ReasonCessationOfOperation {
			t.Fatalf("certificate %s missing from the CRL (%d listed)", s, len(listed))
		}
	}
	if got := count(t, pg, revocation.BucketRevocationChanges); got != 0 {
		t.Fatalf("%d change markers left after publishing", got)
	}
	// Nothing changed since: the same CRL is served, not re-signed.
	again, err := pub.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(der) {
		t.Fatal("CRL re-signed with nothing revoked since")
	}
}
