// Package postgres is the shared store.Backend: one PostgreSQL database
// that several zdps replicas use at once, which makes the replicas
// stateless (every document, operation, certificate and the CA state live in
// the database).
//
// What it owns: the schema (one key-value table, versioned migrations
// applied by Open under an advisory lock so that replicas starting together
// apply them once), transactions (SERIALIZABLE, retried on serialization
// failures and deadlocks a bounded number of times with jittered backoff),
// ETag compare-and-swap in SQL, keyset pagination for Scan, the connection
// pool and its limits, and a deadline on every query.
//
// Layout: a table kv(bucket text COLLATE "C", key bytea, value bytea,
// etag text, PRIMARY KEY (bucket, key)) in a schema of its own ("zdps" by
// default). Keys are bytea rather than text so that order is byte order
// whatever the database's collation, any byte sequence is a valid key, and
// a prefix scan is a plain range (key >= prefix AND key < successor(prefix))
// with no LIKE escaping. Rows up to a page stay in the table as they are
// (toast_tuple_target): a certificate with its chain is just over the 2 KB
// at which PostgreSQL would otherwise try to compress it and move it to
// the TOAST table, on every registration.
//
// Isolation: Update runs at SERIALIZABLE, as store.Backend requires. A
// transaction that PostgreSQL aborts with 40001 (serialization failure) or
// 40P01 (deadlock) runs again from the start, so fn may run more than once;
// the Backend contract already requires fn to depend only on what it reads
// through its Tx. After Options.MaxAttempts attempts Update gives up with
// ErrContention. View runs at REPEATABLE READ, READ ONLY: one consistent
// snapshot, never aborted.
//
// Conditional transactions (store.Conditional, for hot paths whose author
// has said what they rely on) run at READ COMMITTED instead, with no
// predicate locks: a write of a key the transaction read becomes a
// compare-and-swap on that read and a lost one runs fn again (read.go),
// and Lock holds a row with SELECT ... FOR SHARE / FOR UPDATE. Nothing
// there depends on advisory locks or on SERIALIZABLE's predicate locking,
// which distributed PostgreSQL-compatible engines implement differently
// or not at all.
//
// Round trips and statements are few (pipeline.go, group.go, each.go):
// the BEGIN rides with the first statement, a conditional transaction's
// writes wait for the COMMIT, deferred writes of one kind and runs of plain
// reads are one multi-row statement each, and several one-shot reads
// outside a transaction (store.ViewEach) are one batch.
//
// Every statement, batch, BEGIN and COMMIT is counted (RoundTrips), and
// every statement of a batch (Statements), as are
// retries (Retries) and lost compare-and-swaps of conditional transactions
// (Conflicts), for the metrics.
//
// Pitfalls it deals with:
//
//   - A transaction that saw a serialization failure is aborted even if fn
//     swallowed the error; the attempt is retried whatever fn returned.
//   - A query with no deadline can hang a request forever on a stuck
//     server or lock: every statement runs under Options.QueryTimeout, and
//     the server-side statement_timeout and
//     idle_in_transaction_session_timeout back it up, so that a replica that
//     dies inside a transaction does not hold its locks.
//   - Two replicas starting at once would race on CREATE TABLE: migrations
//     run in one transaction holding pg_advisory_xact_lock.
package postgres
