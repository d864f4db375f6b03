package revocation_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type revEnv struct {
	st    *store.Store
	rev   *revocation.Revocations
	certs *store.Collection[*enrollment.Certificate]
	clk   *clock
	n     int
}

func newRevEnv(t *testing.T, pageSize int) *revEnv {
	t.Helper()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st := store.New(memory.New(), clk.now)
	rev, err := revocation.NewRevocations(st, revocation.RevocationConfig{Now: clk.now, PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	return &revEnv{st: st, rev: rev, certs: revocation.Certificates(st.Backend, clk.now), clk: clk}
}

// register stores a registration record (through group when not "") and
// one certificate for it, as the pipeline does, and returns the serial.
func (e *revEnv) register(t *testing.T, regID, group string) string {
	t.Helper()
	ctx := context.Background()
	e.n++
	serial := fmt.Sprintf("%032x", e.n)
	err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
		rec := &enrollment.Registration{RegistrationID: regID, DeviceID: regID, Status: enrollment.RegistrationAssigned, AssignedHub: "hub", EnrollmentGroupID: group}
		if _, err := e.st.Registrations.In(tx).Put(ctx, rec, store.Condition{}); err != nil {
			return err
		}
		now := e.clk.now()
		_, err := e.certs.In(tx).Put(ctx, &enrollment.Certificate{Serial: serial, RegistrationID: regID, DeviceID: regID, NotBefore: now, NotAfter: now.Add(24 * time.Hour)}, store.Condition{IfNoneMatch: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return serial
}

func (e *revEnv) revoked(t *testing.T, serial string) bool {
	t.Helper()
	ok, err := e.rev.IsRevoked(context.Background(), serial)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestRevokeRegistrationTx(t *testing.T) {
	ctx := context.Background()
	e := newRevEnv(t, 2)
	a1, a2, a3 := e.register(t, "dev-a", ""), e.register(t, "dev-a", ""), e.register(t, "dev-a", "")
	b := e.register(t, "dev-b", "")
	revoke := func(id string) int {
		var n int
		if err := e.st.Backend.Update(ctx, func(tx store.Tx) (err error) {
			n, err = e.rev.RevokeRegistrationTx(ctx, tx, id, revocation.ReasonCessationOfOperation)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := revoke("DEV-A"); n != 3 {
		t.Fatalf("revoked %d, want 3 (IDs are case-insensitive, pages of 2)", n)
	}
	if n := revoke("dev-a"); n != 0 {
		t.Fatalf("second revocation revoked %d, want 0", n)
	}
	for _, tc := range []struct {
		serial string
		want   bool
	}{{a1, true}, {a2, true}, {a3, true}, {b, false}} {
		t.Run(tc.serial, func(t *testing.T) {
			if got := e.revoked(t, tc.serial); got != tc.want {
				t.Errorf("IsRevoked = %v, want %v", got, tc.want)
			}
		})
	}
	c, err := e.certs.Get(ctx, a1)
	if err != nil || c.RevokedAt == nil || c.RevocationReason != revocation.ReasonCessationOfOperation {
		t.Fatalf("stored certificate %+v, %v", c, err)
	}
	if _, err := e.rev.IsRevoked(ctx, "ffff"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown serial: %v, want ErrNotFound", err)
	}
}

func TestGroupSweep(t *testing.T) {
	ctx := context.Background()
	e := newRevEnv(t, 4)
	var inGroup []string
	for i := range 25 {
		inGroup = append(inGroup, e.register(t, fmt.Sprintf("g-dev-%02d", i), "group-1"))
	}
	other := e.register(t, "o-dev", "group-2")
	individual := e.register(t, "i-dev", "")

	if err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
		_, err := e.rev.StartGroupSweepTx(ctx, tx, "Group-1", revocation.ReasonPrivilegeWithdrawn)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.clk.add(time.Second)
	// Stored after the job began (the pipeline refuses this while the job
	// is pending: Pending): the sweep has no time cutoff, so it
	// is revoked too.
	inGroup = append(inGroup, e.register(t, "g-dev-late", "group-1"))

	done, err := e.rev.SweepPending(ctx, 2)
	if err != nil || done {
		t.Fatalf("bounded sweep: done=%v err=%v, want unfinished", done, err)
	}
	n := 0
	for _, s := range inGroup {
		if e.revoked(t, s) {
			n++
		}
	}
	if n != 8 { // "g-dev-late" sorts after the others: not in the first pages
		t.Errorf("after 2 pages of 4: %d revoked, want 8", n)
	}
	// The rest in the background, as serve runs it.
	rctx, cancel := context.WithCancel(ctx)
	runDone := make(chan error)
	go func() { runDone <- e.rev.Run(rctx, time.Hour) }()
	e.rev.Kick()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if done, err := e.rev.SweepPending(ctx, 1); err != nil {
			t.Fatal(err)
		} else if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sweep did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-runDone; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	for i, s := range inGroup {
		if !e.revoked(t, s) {
			t.Errorf("device %d of the group not revoked", i)
		}
	}
	after := e.register(t, "g-dev-after", "group-1") // the group enabled again, the sweep done: kept
	for name, s := range map[string]string{"other group": other, "individual": individual, "registered after the sweep finished": after} {
		t.Run(name, func(t *testing.T) {
			if e.revoked(t, s) {
				t.Error("revoked")
			}
		})
	}
}

func newTestCA(t *testing.T, now func() time.Time) *ca.CA {
	t.Helper()
	c, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: make([]byte, 32), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseCRL(t *testing.T, authority *ca.CA, der []byte) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(authority.Intermediate()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl
}

func serials(crl *x509.RevocationList) map[string]int {
	m := map[string]int{}
	for _, r := range crl.RevokedCertificateEntries {
		m[fmt.Sprintf("%032x", r.SerialNumber)] = r.ReasonCode
	}
	return m
}

// countingSigner counts signatures, to show the CRL is not re-signed per
// request.
type countingSigner struct {
	mu sync.Mutex
	n  int
	s  revocation.CRLSigner
}

func (c *countingSigner) CRL(r []revocation.Entry, number *big.Int, next time.Duration) ([]byte, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.s.CRL(r, number, next)
}

func (c *countingSigner) count() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func TestCRLPublisher(t *testing.T) {
	ctx := context.Background()
	e := newRevEnv(t, 0)
	authority := newTestCA(t, e.clk.now)
	signer := &countingSigner{s: caCRL{authority}}
	// Two replicas on one store.
	p1, err := revocation.NewCRLPublisher(e.rev, signer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rev2, _ := revocation.NewRevocations(e.st, revocation.RevocationConfig{Now: e.clk.now})
	p2, _ := revocation.NewCRLPublisher(rev2, signer, time.Hour)

	keep := e.register(t, "dev-keep", "")
	gone := e.register(t, "dev-gone", "")
	short := e.register(t, "dev-short", "")

	var last int64
	fetch := func(t *testing.T, p *revocation.CRLPublisher) *x509.RevocationList {
		t.Helper()
		der, err := p.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl := parseCRL(t, authority, der)
		if n := crl.Number.Int64(); n < last {
			t.Fatalf("CRL number went back from %d to %d", last, n)
		}
		last = crl.Number.Int64()
		return crl
	}
	revoke := func(id string) {
		if err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
			_, err := e.rev.RevokeRegistrationTx(ctx, tx, id, revocation.ReasonCessationOfOperation)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}

	crl := fetch(t, p1)
	if crl.Number.Int64() != 1 || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("first CRL: number %v, %d entries", crl.Number, len(crl.RevokedCertificateEntries))
	}
	for range 10 {
		fetch(t, p1)
		fetch(t, p2)
	}
	if got := signer.count(); got != 1 {
		t.Fatalf("signed %d times for an unchanged revoked set, want 1", got)
	}

	revoke("dev-gone")
	crl = fetch(t, p2)
	if crl.Number.Int64() != 2 || serials(crl)[gone] != revocation.ReasonCessationOfOperation || len(serials(crl)) != 1 {
		t.Fatalf("after revocation: number %v, entries %v", crl.Number, serials(crl))
	}
	if crl1 := fetch(t, p1); crl1.Number.Int64() != 2 {
		t.Fatalf("other replica serves number %v, want the published 2", crl1.Number)
	}

	// A revoked certificate that expires leaves the CRL, once a CRL
	// signed after its expiry listed it (RFC 5280, section 3.3).
	if err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
		c, err := e.certs.In(tx).Get(ctx, short)
		if err != nil {
			return err
		}
		c.NotAfter = e.clk.now().Add(30 * time.Minute)
		_, err = e.certs.In(tx).Put(ctx, c, store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	revoke("dev-short")
	if s := serials(fetch(t, p1)); len(s) != 2 {
		t.Fatalf("entries %v, want 2", s)
	}
	// Three quarters of the validity later the CRL is re-signed even
	// without a change; by then dev-short's certificate has expired, and
	// this CRL is the first one signed after its expiry: it still lists it.
	e.clk.add(46 * time.Minute)
	before := signer.count()
	crl = fetch(t, p2)
	if signer.count() != before+1 {
		t.Error("an aging CRL was not re-signed")
	}
	if s := serials(crl); len(s) != 2 || s[short] == 0 {
		t.Errorf("entries %v, want %s still listed on the first CRL after its expiry", s, short)
	}
	// One validity after its expiry, the next CRL drops it.
	e.clk.add(46 * time.Minute)
	crl = fetch(t, p2)
	if signer.count() != before+2 {
		t.Error("an aging CRL was not re-signed")
	}
	if s := serials(crl); len(s) != 1 || s[gone] == 0 {
		t.Errorf("entries %v, want only %s", s, gone)
	}
	if _, ok := serials(crl)[keep]; ok {
		t.Error("a certificate never revoked is listed")
	}
	if !crl.NextUpdate.Equal(e.clk.now().Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("nextUpdate %v", crl.NextUpdate)
	}

	// Concurrent requests on both replicas after a change: one number
	// each time, never going back.
	revoke("dev-keep")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			p := p1
			if i%2 == 1 {
				p = p2
			}
			if _, err := p.CRL(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := fetch(t, p1).Number.Int64(); n != last || n < 4 {
		t.Errorf("number %d", n)
	}
}

// caCRL signs with the test CA, as the service API's adapter does.
type caCRL struct{ ca *ca.CA }

func (s caCRL) CRL(entries []revocation.Entry, number *big.Int, next time.Duration) ([]byte, error) {
	revoked := make([]ca.Revoked, len(entries))
	for i, e := range entries {
		revoked[i] = ca.Revoked{Serial: e.Serial, RevokedAt: e.RevokedAt, Reason: e.Reason}
	}
	return s.ca.CRL(revoked, number, next)
}
