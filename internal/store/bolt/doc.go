// Package bolt is the embedded store.Backend: one bbolt file, so that
// `zdps serve` needs nothing but its data directory.
//
// What it owns: the on-disk layout (one bbolt bucket per store.Bucket,
// created by the first write; every value prefixed by a small header that
// carries its ETag), durability (fsync on every commit, never disabled) and
// the grouping of concurrent writers into one commit with bbolt's db.Batch.
//
// Pitfalls it deals with, as documented by bbolt:
//
//   - db.Batch may run a function more than once, and together with other
//     callers' functions in one transaction. store.Backend.Update already
//     requires fn to depend only on what it reads through the transaction,
//     which makes it idempotent under re-runs.
//   - Opening a file whose lock another process holds waits for it; without
//     a timeout it would wait forever. Open always uses one and reports
//     ErrLocked when it expires.
//   - Byte slices handed out by bbolt are valid only inside their
//     transaction; every value leaving this package is a copy.
//
// Check runs bbolt's consistency check; tests run it on every database they
// create.
//
// Backup and upkeep: Snapshot streams a consistent image of the file from
// one read transaction while writers go on (bbolt's Tx.WriteTo; a write
// that needs the file remapped to grow waits for the copy to end); Inspect
// checks a file that no server holds; CompactFile rewrites a file that grew
// with churn to its live size (bbolt never shrinks a file by itself).
package bolt
