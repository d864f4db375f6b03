package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/zdps/zdps/internal/ctxtime"
	"github.com/zdps/zdps/internal/store"
)

// Errors of this package; store's sentinel errors cover everything else.
var (
	// ErrContention: an Update was aborted by serialization failures or
	// deadlocks Options.MaxAttempts times in a row. It wraps store.ErrBusy.
	ErrContention = fmt.Errorf("postgres: transaction kept conflicting with concurrent ones: %w", store.ErrBusy)
	// ErrSchemaTooNew: the database was migrated by a newer zdps than this
	// one; running an older binary against it could corrupt it.
	ErrSchemaTooNew = errors.New("postgres: database schema is newer than this zdps")
	// ErrInvalidConfig: Options or the connection URL are not usable.
	ErrInvalidConfig = errors.New("postgres: invalid configuration")
)

// Defaults of Options.
const (
	DefaultSchema       = "zdps"
	DefaultQueryTimeout = 10 * time.Second
	DefaultMaxAttempts  = 30
	// DefaultConnectTimeout applies when the URL sets no connect_timeout.
	DefaultConnectTimeout = 10 * time.Second
)

// Options tune Open. The zero value is a good default.
type Options struct {
	// Schema holds zdps's tables; created if absent. Default DefaultSchema.
	// Tests give each test its own.
	Schema string
	// MaxConns bounds the pool; zero means 4 per CPU, between 8 and 32.
	// Every replica opens up to this many connections: keep replicas ×
	// MaxConns under the server's max_connections.
	MaxConns int32
	// QueryTimeout bounds every statement (the caller's context may set a
	// shorter deadline); zero means DefaultQueryTimeout.
	QueryTimeout time.Duration
	// MaxAttempts bounds how often an Update runs after serialization
	// failures; zero means DefaultMaxAttempts.
	MaxAttempts int
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Backend is a store.Backend on a PostgreSQL database. It is safe for
// concurrent use, by any number of processes sharing the database.
type Backend struct {
	pool         *pgxpool.Pool
	schema       string
	queryTimeout time.Duration
	maxAttempts  int
	closed       atomic.Bool
	q            queries
	retries      atomic.Int64
	conflicts    atomic.Int64
	roundTrips   roundTrips
}

var _ store.Backend = (*Backend)(nil)

// SplitURL separates a zdps store URL into the connection string for pgx and
// the schema named by its "schema" query parameter ("" when absent), which
// PostgreSQL itself would reject as an unknown setting.
func SplitURL(raw string) (connString, schema string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", fmt.Errorf("%w: want a postgres:// URL", ErrInvalidConfig)
	}
	q := u.Query()
	schema = q.Get("schema")
	q.Del("schema")
	u.RawQuery = q.Encode()
	return u.String(), schema, nil
}

// Open connects to the database named by connString (a postgres:// URL or
// a key=value DSN), checks that it answers, and brings the schema up to
// date. ctx bounds all of that.
func Open(ctx context.Context, connString string, opts Options) (*Backend, error) {
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if !schemaName.MatchString(opts.Schema) {
		return nil, fmt.Errorf("%w: schema %q: want lower-case letters, digits and _", ErrInvalidConfig, opts.Schema)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("%w: cannot parse the connection string", ErrInvalidConfig)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = int32(min(max(4*runtime.GOMAXPROCS(0), 8), 32))
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	cfg.MaxConns = opts.MaxConns
	cfg.MinIdleConns = min(2, opts.MaxConns)
	cfg.MaxConnLifetime = time.Hour
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	cfg.PingTimeout = 5 * time.Second
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = "zdps"
	}
	// Server-side backstops of the client-side deadlines: a statement
	// that outlives its context, or a replica that dies inside a
	// transaction, must not hold locks for long.
	if rp["statement_timeout"] == "" {
		rp["statement_timeout"] = strconv.FormatInt((2 * opts.QueryTimeout).Milliseconds(), 10)
	}
	if rp["idle_in_transaction_session_timeout"] == "" {
		rp["idle_in_transaction_session_timeout"] = "60000"
	}
	b := &Backend{}
	cfg.ConnConfig.Tracer = &b.roundTrips
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	*b = Backend{
		pool:         pool,
		schema:       opts.Schema,
		queryTimeout: opts.QueryTimeout,
		maxAttempts:  opts.MaxAttempts,
		q:            newQueries(opts.Schema),
	}
	if err := b.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return b, nil
}

// Schema is the schema holding the tables.
func (b *Backend) Schema() string { return b.schema }

// View runs fn in a read-only REPEATABLE READ transaction: every read sees
// one snapshot.
func (b *Backend) View(ctx context.Context, fn func(store.Tx) error) error {
	_, err := b.attempt(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, false, true, fn)
	return err
}

// Update runs fn in a SERIALIZABLE transaction (READ COMMITTED when ctx
// asks for a conditional one: read.go) and returns once it is committed.
// On a serialization failure, deadlock or lost compare-and-swap it runs fn
// again, up to Options.MaxAttempts times, then fails with ErrContention.
func (b *Backend) Update(ctx context.Context, fn func(store.Tx) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadWrite}
	conditional := store.IsConditional(ctx)
	if conditional {
		// read.go: the statements themselves guard what fn relies on.
		opts.IsoLevel = pgx.ReadCommitted
	}
	for n := 1; ; n++ {
		// Only the first attempt groups its statements (group.go): a
		// retry then learns which write failed and why, so there must be
		// one.
		retry, err := b.attempt(ctx, opts, conditional, n == 1 && b.maxAttempts > 1, fn)
		if !retry {
			return err
		}
		b.retries.Add(1)
		if errors.Is(err, errLostRace) {
			b.conflicts.Add(1)
		}
		if n >= b.maxAttempts {
			return fmt.Errorf("%w (%d attempts): %w", ErrContention, n, err)
		}
		if err := ctxtime.Sleep(ctx, backoff(n)); err != nil {
			return err
		}
	}
}

// backoff is full jitter over an exponential ceiling from 1ms to 100ms.
func backoff(attempt int) time.Duration {
	ceil := time.Millisecond << min(attempt-1, 7)
	return rand.N(min(ceil, 100*time.Millisecond)) + time.Millisecond/4
}

// attempt runs fn once in a transaction and reports whether it failed in a
// way that running it again may fix.
func (b *Backend) attempt(ctx context.Context, opts pgx.TxOptions, conditional, grouped bool, fn func(store.Tx) error) (retry bool, err error) {
	writable := opts.AccessMode != pgx.ReadOnly
	t, err := b.acquire(ctx)
	if err != nil {
		return false, err
	}
	t.writable, t.conditional, t.begin, t.grouped = writable, conditional, beginSQL(opts), grouped
	defer t.release(ctx)
	if err := fn(t); err != nil {
		// An aborted transaction stays aborted whatever fn made of the
		// error it got; retry it.
		if t.retryErr != nil {
			return true, t.retryErr
		}
		return false, err
	}
	if t.retryErr != nil {
		return true, t.retryErr
	}
	if err := t.commit(ctx); err != nil {
		if t.retryErr != nil {
			return true, t.retryErr
		}
		return isRetryable(err), fmt.Errorf("postgres: commit: %w", err)
	}
	return false, nil
}

// acquire takes a connection from the pool for one transaction, unless
// ctx is done or the backend closed.
func (b *Backend) acquire(ctx context.Context) (*tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, store.ErrClosed
	}
	actx, cancel := context.WithTimeout(ctx, b.queryTimeout)
	conn, err := b.pool.Acquire(actx)
	cancel()
	if err != nil {
		if b.closed.Load() {
			return nil, store.ErrClosed
		}
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &tx{b: b, conn: conn}, nil
}

// release rolls back whatever is still open (with a fresh deadline: ctx may
// be what failed) and hands the connection back; the pool closes one it
// cannot trust.
func (t *tx) release(ctx context.Context) {
	if st := t.conn.Conn().PgConn().TxStatus(); st != 'I' && st != 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.b.queryTimeout)
		_, _ = t.conn.Exec(rctx, "rollback")
		cancel()
	}
	t.conn.Release()
}

// beginSQL is the BEGIN statement of opts.
func beginSQL(opts pgx.TxOptions) string {
	s := "begin isolation level " + string(opts.IsoLevel)
	if opts.AccessMode == pgx.ReadOnly {
		return s + " read only"
	}
	return s + " read write"
}

// ViewOne runs fn, which makes at most one statement, outside any
// transaction (store.OneShotReader): one statement sees one snapshot by
// itself, and the BEGIN and COMMIT round trips are saved.
func (b *Backend) ViewOne(ctx context.Context, fn func(store.Tx) error) error {
	t, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	t.oneShot = true
	defer t.release(ctx)
	return fn(t)
}

// isRetryable reports a serialization failure or deadlock: the
// transaction was rolled back and may succeed when run again.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// Close waits for transactions in flight and closes every connection;
// later calls fail with store.ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.pool.Close()
	return nil
}

// Retries counts Update attempts that were aborted by a serialization
// failure or deadlock and ran again (or gave up), since Open.
func (b *Backend) Retries() int64 { return b.retries.Load() }

// Conflicts counts the retries of conditional Updates whose write found a
// key changed since they read it (read.go), since Open; Retries includes
// them.
func (b *Backend) Conflicts() int64 { return b.conflicts.Load() }

// RoundTrips counts the statements, batches, BEGINs and COMMITs sent to the
// database since Open: each is one round trip.
func (b *Backend) RoundTrips() int64 { return b.roundTrips.n.Load() }

// Statements is how many statements the backend has sent (each of a batch
// counts), BEGIN and COMMIT included.
func (b *Backend) Statements() int64 { return b.roundTrips.statements.Load() }

// Stat is the pool's state, for metrics and tests.
func (b *Backend) Stat() *pgxpool.Stat { return b.pool.Stat() }
