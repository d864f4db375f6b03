package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/postgres"
	"github.com/zdps/zdps/internal/store/storetest"
)

// openTest opens a backend on a schema of its own, dropped when the test
// ends.
func openTest(t testing.TB, opts postgres.Options) *postgres.Backend {
	t.Helper()
	url, schema := pgtest.Schema(t)
	opts.Schema = schema
	b, err := postgres.Open(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // before the schema is dropped
	return b
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return openTest(t, postgres.Options{}) })
}

// The suite again with a pool of two connections (transactions wait for a
// connection, never deadlock on the pool) and with many: more concurrent
// SERIALIZABLE transactions, more serialization failures to retry.
func TestConformancePoolSizes(t *testing.T) {
	for _, n := range []int32{2, 64} {
		t.Run(fmt.Sprintf("MaxConns=%d", n), func(t *testing.T) {
			storetest.RunBackend(t, func(t *testing.T) store.Backend { return openTest(t, postgres.Options{MaxConns: n}) })
		})
	}
}

func TestUnreachableFails(t *testing.T) {
	pgtest.URL(t) // honours the opt-out like every PostgreSQL test
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	// Port 1 on localhost: connection refused at once.
	b, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", postgres.Options{})
	if err == nil {
		b.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("Open took %v to fail", d)
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		opts      postgres.Options
	}{
		{"schema with a quote", "postgres://127.0.0.1/test", postgres.Options{Schema: `a"b`}},
		{"schema upper case", "postgres://127.0.0.1/test", postgres.Options{Schema: "Zdps"}},
		{"schema too long", "postgres://127.0.0.1/test", postgres.Options{Schema: "a123456789012345678901234567890123456789012345678901234567890123"}},
		{"bad URL", "postgres://[::1/test", postgres.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := postgres.Open(t.Context(), tc.url, tc.opts)
			if !errors.Is(err, postgres.ErrInvalidConfig) {
				t.Fatalf("Open = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestSplitURL(t *testing.T) {
	for _, tc := range []struct {
		in, conn, schema string
		err              bool
	}{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?sslmode=disable", "", false},
		{"postgresql://u@h/db?schema=tenant_a&sslmode=disable", "postgresql://u@h/db?sslmode=disable", "tenant_a", false},
		{"bolt:/x", "", "", true},
		{"http://h/db", "", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			conn, schema, err := postgres.SplitURL(tc.in)
			if (err != nil) != tc.err || conn != tc.conn || schema != tc.schema {
				t.Fatalf("SplitURL = %q, %q, %v; want %q, %q, error %v", conn, schema, err, tc.conn, tc.schema, tc.err)
			}
		})
	}
}

// Replicas starting at once all migrate the same fresh schema; exactly one
// applies each migration, and all of them work afterwards.
func TestConcurrentMigration(t *testing.T) {
	url, schema := pgtest.Schema(t)
	const n = 8
	backends := make([]*postgres.Backend, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			backends[i], errs[i] = postgres.Open(t.Context(), url, postgres.Options{Schema: schema, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, b := range backends {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		defer b.Close()
	}
	ctx := t.Context()
	for i, b := range backends {
		err := b.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, "b", fmt.Sprint(i), []byte("v"), store.Condition{IfNoneMatch: true})
			return err
		})
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, max int
	err = conn.QueryRow(ctx, `SELECT count(*), max(version) FROM `+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&rows, &max)
	if err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion || max != postgres.SchemaVersion {
		t.Fatalf("schema_migrations: %d rows up to version %d, want %d", rows, max, postgres.SchemaVersion)
	}
}

// A database migrated by a newer zdps is refused rather than used.
func TestSchemaTooNew(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := t.Context()
	b, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+` (version) VALUES ($1)`, postgres.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if b, err := postgres.Open(ctx, url, postgres.Options{Schema: schema}); !errors.Is(err, postgres.ErrSchemaTooNew) {
		if err == nil {
			b.Close()
		}
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
}

// Contention beyond MaxAttempts ends in ErrContention, not a hang or a lost
// write.
func TestContentionBounded(t *testing.T) {
	b := openTest(t, postgres.Options{MaxAttempts: 1, MaxConns: 16})
	ctx := t.Context()
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, contention int
	gate := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-gate
			err := b.Update(ctx, func(tx store.Tx) error {
				it, err := tx.Get(ctx, "b", "counter")
				c := 0
				if err == nil {
					fmt.Sscan(string(it.Value), &c)
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
				time.Sleep(20 * time.Millisecond) // overlap for sure
				_, err = tx.Put(ctx, "b", "counter", fmt.Append(nil, c+1), store.Condition{})
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, postgres.ErrContention):
				if !errors.Is(err, store.ErrBusy) {
					t.Errorf("contention %v does not wrap store.ErrBusy (the API's 503)", err)
				}
				contention++
			default:
				t.Errorf("Update: %v", err)
			}
		})
	}
	close(gate)
	wg.Wait()
	if ok == 0 || contention == 0 || ok+contention != n {
		t.Fatalf("%d succeeded and %d hit contention of %d; want both kinds", ok, contention, n)
	}
	var got int
	err := b.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, "b", "counter")
		if err != nil {
			return err
		}
		_, err = fmt.Sscan(string(it.Value), &got)
		return err
	})
	if err != nil || got != ok {
		t.Fatalf("counter = %d, %v; want the %d successful increments", got, err, ok)
	}
}

// Raw copy keeps ETags and lists buckets, as zdps migrate needs.
func TestRawCapabilities(t *testing.T) {
	b := openTest(t, postgres.Options{})
	ctx := t.Context()
	err := b.Update(ctx, func(tx store.Tx) error {
		w, ok := tx.(store.RawWriter)
		if !ok {
			return errors.New("Tx is not a RawWriter")
		}
		for _, bk := range []store.Bucket{"zeta", "alpha", "mid"} {
			if err := w.PutRaw(ctx, bk, "k", []byte("v"), "etag-"+string(bk)); err != nil {
				return err
			}
		}
		return w.PutRaw(ctx, "alpha", "k", []byte("v2"), "etag-again")
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.View(ctx, func(tx store.Tx) error {
		got, err := tx.(store.BucketLister).Buckets(ctx)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != "[alpha mid zeta]" {
			t.Errorf("Buckets = %v", got)
		}
		it, err := tx.Get(ctx, "alpha", "k")
		if err != nil || string(it.Value) != "v2" || it.ETag != "etag-again" {
			t.Errorf("Get = %+v, %v", it, err)
		}
		return tx.(store.RawWriter).PutRaw(ctx, "x", "k", nil, "e")
	})
	if err == nil {
		t.Fatal("PutRaw in View succeeded")
	}
}

// TestLargeRowsStayInline: a value of a few kilobytes (a certificate with
// its chain) is stored in the table as it is, with nothing moved to the
// TOAST table (migration 2).
func TestLargeRowsStayInline(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := t.Context()
	b, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	value := make([]byte, 3000)
	for i := range value {
		value[i] = byte(i * 7919 >> 3) // hardly compressible, like DER
	}
	if err := b.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, "certificates", "serial", value, store.Condition{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var toast int64
	kv := pgx.Identifier{schema, "kv"}.Sanitize()
	if err := conn.QueryRow(ctx, `SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = $1::regclass`, kv).Scan(&toast); err != nil {
		t.Fatal(err)
	}
	if toast != 0 {
		t.Errorf("TOAST table holds %d bytes after a 3 KB value, want none", toast)
	}
}
