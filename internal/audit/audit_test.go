package audit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/store/postgres"
)

// rawWriter edits the store behind the trail's back: through the
// backend's own transactions (bbolt, memory), or with SQL on the table
// (PostgreSQL), as an attacker with access to the database would.
type rawWriter interface {
	put(t *testing.T, b store.Bucket, key string, value []byte)
	del(t *testing.T, b store.Bucket, key string)
}

type txWriter struct{ b store.Backend }

func (w txWriter) put(t *testing.T, b store.Bucket, key string, value []byte) {
	t.Helper()
	if err := w.b.Update(t.Context(), func(tx store.Tx) error {
		_, err := tx.Put(t.Context(), b, key, value, store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func (w txWriter) del(t *testing.T, b store.Bucket, key string) {
	t.Helper()
	if err := w.b.Update(t.Context(), func(tx store.Tx) error { return tx.Delete(t.Context(), b, key, store.Condition{}) }); err != nil {
		t.Fatal(err)
	}
}

type sqlWriter struct{ url, table string }

func (w sqlWriter) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), w.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tag, err := conn.Exec(t.Context(), q, args...)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("%s: %v (%d rows)", q, err, tag.RowsAffected())
	}
}

func (w sqlWriter) put(t *testing.T, b store.Bucket, key string, value []byte) {
	w.exec(t, `INSERT INTO `+w.table+` (bucket, key, value, etag) VALUES ($1, $2, $3, 'x') ON CONFLICT (bucket, key) DO UPDATE SET value = EXCLUDED.value`, string(b), []byte(key), value)
}

func (w sqlWriter) del(t *testing.T, b store.Bucket, key string) {
	w.exec(t, `DELETE FROM `+w.table+` WHERE bucket = $1 AND key = $2`, string(b), []byte(key))
}

type backendCase struct {
	name string
	open func(t *testing.T) (store.Backend, rawWriter)
}

func backends() []backendCase {
	return []backendCase{
		{"memory", func(t *testing.T) (store.Backend, rawWriter) {
			b := memory.New()
			return b, txWriter{b}
		}},
		{"bolt", func(t *testing.T) (store.Backend, rawWriter) {
			b, err := bolt.Open(filepath.Join(t.TempDir(), "zdps.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b, txWriter{b}
		}},
		{"postgres", func(t *testing.T) (store.Backend, rawWriter) {
			url, schema := pgtest.Schema(t)
			b, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b, sqlWriter{url: url, table: pgx.Identifier{schema, "kv"}.Sanitize()}
		}},
	}
}

func newSigner(t *testing.T) *audit.KeySigner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &audit.KeySigner{Key: k}
}

func newLog(t *testing.T, b store.Backend, s audit.Signer, owner string) *audit.Log {
	l, err := audit.New(audit.Config{Backend: b, Signer: s, Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// record writes n events concurrently, each in a transaction of its own
// beside a change, as the pipeline does.
func record(t *testing.T, b store.Backend, l *audit.Log, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- b.Update(t.Context(), func(tx store.Tx) error {
				if _, err := tx.Put(t.Context(), "changes", fmt.Sprintf("c%04d", i), []byte("x"), store.Condition{}); err != nil {
					return err
				}
				return l.Record(t.Context(), tx, audit.Event{Action: audit.ActionRegistrationAssigned, Outcome: audit.OutcomeSuccess,
					Actor: "device", RegistrationID: fmt.Sprintf("dev-%04d", i), Details: map[string]string{"hub": "h1"}})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func sealAll(t *testing.T, l *audit.Log) {
	t.Helper()
	for range 100 {
		n, err := l.Seal(t.Context(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("sealing did not drain")
}

func chainKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

func readEntry(t *testing.T, b store.Backend, seq uint64) audit.Entry {
	t.Helper()
	var e audit.Entry
	if err := b.View(t.Context(), func(tx store.Tx) error {
		it, err := tx.Get(t.Context(), audit.BucketChain, chainKey(seq))
		if err != nil {
			return err
		}
		return json.Unmarshal(it.Value, &e)
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestVerifyFindsTampering(t *testing.T) {
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			tamper := []struct {
				name string
				do   func(t *testing.T, b store.Backend, w rawWriter)
				kind string
				seq  uint64
			}{
				{"none", func(*testing.T, store.Backend, rawWriter) {}, "", 0},
				{"event edited", func(t *testing.T, b store.Backend, w rawWriter) {
					e := readEntry(t, b, 7)
					e.Event = json.RawMessage(strings.Replace(string(e.Event), `"outcome":"success"`, `"outcome":"refused"`, 1))
					raw, _ := json.Marshal(e)
					w.put(t, audit.BucketChain, chainKey(7), raw)
				}, audit.ProblemEdited, 7},
				{"event edited and rehashed", func(t *testing.T, b store.Backend, w rawWriter) {
					// An attacker who knows the hash function recomputes
					// the entry's hash: the next entry's link breaks.
					e := readEntry(t, b, 7)
					e.Event = json.RawMessage(strings.Replace(string(e.Event), `"hub":"h1"`, `"hub":"evil"`, 1))
					e.Hash = audit.EntryHashForTest(e.Seq, e.Prev, e.Event)
					raw, _ := json.Marshal(e)
					w.put(t, audit.BucketChain, chainKey(7), raw)
				}, audit.ProblemEdited, 8},
				{"event deleted", func(t *testing.T, _ store.Backend, w rawWriter) {
					w.del(t, audit.BucketChain, chainKey(12))
				}, audit.ProblemDeleted, 12},
				{"last event deleted", func(t *testing.T, _ store.Backend, w rawWriter) {
					w.del(t, audit.BucketChain, chainKey(20))
				}, audit.ProblemTruncated, 20},
				{"event inserted past the head", func(t *testing.T, b store.Backend, w rawWriter) {
					e := readEntry(t, b, 20)
					e.Seq, e.Prev = 21, e.Hash
					raw, _ := json.Marshal(e)
					w.put(t, audit.BucketChain, chainKey(21), raw)
				}, audit.ProblemInserted, 21},
				{"event inserted between", func(t *testing.T, b store.Backend, w rawWriter) {
					raw, _ := json.Marshal(readEntry(t, b, 5))
					w.put(t, audit.BucketChain, chainKey(5)+"a", raw)
				}, audit.ProblemInserted, 6},
				{"head forged", func(t *testing.T, _ store.Backend, w rawWriter) {
					w.put(t, audit.BucketState, "head", []byte(`{"seq":19,"hash":"00","time":"2026-01-01T00:00:00Z","sig":"AAAA"}`))
				}, audit.ProblemHead, 19},
			}
			for _, tc := range tamper {
				t.Run(tc.name, func(t *testing.T) {
					b, w := bc.open(t)
					l := newLog(t, b, newSigner(t), "r1")
					record(t, b, l, 20)
					sealAll(t, l)
					tc.do(t, b, w)
					rep, err := l.Verify(t.Context())
					if tc.kind == "" {
						if err != nil || rep.Entries != 20 || rep.To != 20 || rep.Pending != 0 {
							t.Fatalf("clean trail: %+v, %v", rep, err)
						}
						return
					}
					var p *audit.Problem
					if !errors.As(err, &p) || !errors.Is(err, audit.ErrTampered) {
						t.Fatalf("Verify = %+v, %v; want a %s problem", rep, err, tc.kind)
					}
					if p.Kind != tc.kind || p.Seq != tc.seq {
						t.Fatalf("problem %+v (%v); want %s at %d", p, err, tc.kind, tc.seq)
					}
				})
			}
		})
	}
}

func TestSealingTwoReplicas(t *testing.T) {
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			b, _ := bc.open(t)
			s := newSigner(t)
			l1, l2 := newLog(t, b, s, "r1"), newLog(t, b, s, "r2")
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { l1.Run(ctx, 5*time.Millisecond) })
			wg.Go(func() { l2.Run(ctx, 5*time.Millisecond) })
			record(t, b, l1, 150)
			record(t, b, l2, 150)
			deadline := time.Now().Add(30 * time.Second)
			for {
				rep, err := l1.Verify(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if rep.Pending == 0 && rep.Entries == 300 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not sealed in time: %+v", rep)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			wg.Wait()
			evs, _, err := l2.List(t.Context(), audit.Filter{}, 0, 0, 0)
			if err != nil || len(evs) != 300 {
				t.Fatalf("List: %d events, %v", len(evs), err)
			}
			seen := map[string]bool{}
			for i, e := range evs {
				if e.Seq != uint64(i+1) || seen[e.ID] {
					t.Fatalf("event %d: seq %d, id %s (duplicate %v)", i, e.Seq, e.ID, seen[e.ID])
				}
				seen[e.ID] = true
			}
		})
	}
}

func TestListFilters(t *testing.T) {
	b := memory.New()
	l := newLog(t, b, newSigner(t), "")
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	evs := []audit.Event{
		{Time: t0, Action: audit.ActionRegistrationAssigned, Outcome: audit.OutcomeSuccess, Actor: "device", RegistrationID: "a"},
		{Time: t0.Add(time.Minute), Action: audit.ActionRegistrationRefused, Outcome: audit.OutcomeRefused, Reason: "unauthorized", Actor: "device", RegistrationID: "b"},
		{Time: t0.Add(2 * time.Minute), Action: "enrollment.delete", Outcome: audit.OutcomeSuccess, Actor: "admin", Resource: "enrollments/a", ETagBefore: "e1"},
		{Time: t0.Add(3 * time.Minute), Action: audit.ActionRegistrationAssigned, Outcome: audit.OutcomeSuccess, Actor: "device", RegistrationID: "A"},
	}
	for _, e := range evs {
		if err := b.Update(t.Context(), func(tx store.Tx) error { return l.Record(t.Context(), tx, e) }); err != nil {
			t.Fatal(err)
		}
	}
	sealAll(t, l)
	for _, tc := range []struct {
		name string
		f    audit.Filter
		want []uint64
	}{
		{"all", audit.Filter{}, []uint64{1, 2, 3, 4}},
		{"registration id, any case", audit.Filter{RegistrationID: "a"}, []uint64{1, 4}},
		{"action prefix", audit.Filter{Action: "registration."}, []uint64{1, 2, 4}},
		{"action exact", audit.Filter{Action: "enrollment.delete"}, []uint64{3}},
		{"outcome", audit.Filter{Outcome: "refused"}, []uint64{2}},
		{"time window", audit.Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []uint64{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := l.List(t.Context(), tc.f, 0, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", seqs, tc.want)
			}
		})
	}
	page, next, err := l.List(t.Context(), audit.Filter{}, 1, 2, 0)
	if err != nil || len(page) != 2 || page[0].Seq != 2 || next != 3 {
		t.Fatalf("page after 1: %v next %d, %v", page, next, err)
	}
}

func TestPruneKeepsTheChainVerifiable(t *testing.T) {
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			b, w := bc.open(t)
			now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			l, err := audit.New(audit.Config{Backend: b, Signer: newSigner(t), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 30 {
				e := audit.Event{Time: now.Add(time.Duration(i) * time.Hour), Action: "hub.update", Outcome: audit.OutcomeSuccess, Actor: "admin"}
				if err := b.Update(t.Context(), func(tx store.Tx) error { return l.Record(t.Context(), tx, e) }); err != nil {
					t.Fatal(err)
				}
			}
			sealAll(t, l)
			n, err := l.Prune(t.Context(), now.Add(10*time.Hour))
			if err != nil || n != 10 {
				t.Fatalf("Prune = %d, %v", n, err)
			}
			sealAll(t, l) // the checkpoint event
			rep, err := l.Verify(t.Context())
			if err != nil || rep.From != 11 || rep.Entries != 21 {
				t.Fatalf("after prune: %+v, %v", rep, err)
			}
			evs, _, _ := l.List(t.Context(), audit.Filter{Action: audit.ActionCheckpoint}, 0, 0, 0)
			if len(evs) != 1 || evs[0].Details["pruned"] != "10" {
				t.Fatalf("checkpoint events: %+v", evs)
			}
			// A forged checkpoint (hiding more of the past) is found.
			w.put(t, audit.BucketState, "checkpoint", []byte(`{"seq":15,"hash":"00","time":"2026-01-01T00:00:00Z","sig":"AAAA"}`))
			if _, err := l.Verify(t.Context()); !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("forged checkpoint: %v", err)
			}
		})
	}
}

func TestRecordRefusesUnboundedEvents(t *testing.T) {
	b := memory.New()
	l := newLog(t, b, newSigner(t), "")
	details := map[string]string{}
	for i := range 40 {
		details[fmt.Sprint(i)] = "v"
	}
	for _, e := range []audit.Event{
		{Outcome: "success", Actor: "x"},
		{Action: "a", Outcome: "success", Actor: "x", RegistrationID: strings.Repeat("x", 2000)},
		{Action: "a", Outcome: "success", Actor: "x", Details: details},
	} {
		err := b.Update(t.Context(), func(tx store.Tx) error { return l.Record(t.Context(), tx, e) })
		if !errors.Is(err, audit.ErrInvalid) {
			t.Fatalf("Record(%+v) = %v; want ErrInvalid", e.Action, err)
		}
	}
}

func TestBufferBoundsAndSaysWhatItDropped(t *testing.T) {
	b := memory.New()
	l := newLog(t, b, newSigner(t), "")
	buf := l.NewBuffer(100)
	for i := range 150 {
		buf.Add(audit.Event{Action: audit.ActionRegistrationRefused, Outcome: audit.OutcomeRefused, Reason: "unauthorized", Actor: "device", RegistrationID: fmt.Sprint(i)})
	}
	if err := buf.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	sealAll(t, l)
	evs, _, _ := l.List(t.Context(), audit.Filter{}, 0, 0, 0)
	if len(evs) != 101 {
		t.Fatalf("%d events, want 100 and one audit.dropped", len(evs))
	}
	last := evs[100]
	if last.Action != audit.ActionDropped || last.Details["dropped"] != "50" {
		t.Fatalf("last event %+v", last)
	}
	if err := buf.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	sealAll(t, l)
	if evs, _, _ := l.List(t.Context(), audit.Filter{}, 0, 0, 0); len(evs) != 101 {
		t.Fatalf("a second flush wrote %d more", len(evs)-101)
	}
}

func TestUnsignedHeadIsRefused(t *testing.T) {
	b := memory.New()
	l := newLog(t, b, newSigner(t), "")
	record(t, b, l, 3)
	sealAll(t, l)
	e := readEntry(t, b, 3)
	txWriter{b}.put(t, audit.BucketState, "head", []byte(fmt.Sprintf(`{"seq":3,"hash":%q,"time":"2026-01-01T00:00:00Z"}`, e.Hash)))
	if _, err := l.Verify(t.Context()); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("unsigned head: %v", err)
	}
}

// Management writes are audited in their own transaction; a failed
// write records nothing; writes without an actor pass through.
func TestChangesRecordsManagementWrites(t *testing.T) {
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			b, _ := bc.open(t)
			l := newLog(t, b, newSigner(t), "")
			cb := audit.Changes(b, l)
			admin := audit.WithActor(t.Context(), "admin")
			var first string
			steps := []func(tx store.Tx) error{
				func(tx store.Tx) error {
					var err error
					first, err = tx.Put(admin, store.BucketHubs, "hub-a", []byte(`{}`), store.Condition{IfNoneMatch: true})
					return err
				},
				func(tx store.Tx) error {
					_, err := tx.Put(admin, store.BucketHubs, "hub-a", []byte(`{"x":1}`), store.Condition{})
					return err
				},
				func(tx store.Tx) error {
					_, err := tx.Put(admin, "certificates", "01", []byte(`{}`), store.Condition{})
					return err
				},
				func(tx store.Tx) error { return tx.Delete(admin, store.BucketHubs, "hub-a", store.Condition{}) },
			}
			for _, s := range steps {
				if err := cb.Update(admin, s); err != nil {
					t.Fatal(err)
				}
			}
			// Refused by its condition: no event.
			if err := cb.Update(admin, func(tx store.Tx) error {
				_, err := tx.Put(admin, store.BucketHubs, "hub-b", []byte(`{}`), store.Condition{IfMatch: "nope"})
				return err
			}); err == nil {
				t.Fatal("conditional put succeeded")
			}
			// The pipeline writes without an actor.
			if err := cb.Update(t.Context(), func(tx store.Tx) error {
				_, err := tx.Put(t.Context(), store.BucketRegistrations, "dev-1", []byte(`{}`), store.Condition{})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			sealAll(t, l)
			evs, _, _ := l.List(t.Context(), audit.Filter{}, 0, 0, 0)
			var got []string
			for _, e := range evs {
				got = append(got, e.Action+" "+e.Resource+" "+e.Actor)
			}
			if fmt.Sprint(got) != "[hub.create hub/hub-a admin hub.update hub/hub-a admin hub.delete hub/hub-a admin]" {
				t.Fatalf("events %v", got)
			}
			if evs[0].ETagBefore != "" || evs[0].ETagAfter != first || evs[1].ETagBefore != first || evs[2].ETagAfter != "" || evs[2].ETagBefore != evs[1].ETagAfter {
				t.Fatalf("etags %+v", evs)
			}
		})
	}
}
