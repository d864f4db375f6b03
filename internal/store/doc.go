// Package store defines how zdps keeps its state: a small key-value Backend
// interface that every storage engine implements (bbolt in store/bolt,
// PostgreSQL in store/postgres, an in-memory reference in store/memory;
// store/storetest is the conformance suite all three pass), and typed
// collections on top of it that handle JSON encoding, case-insensitive keys,
// ETag compare-and-swap, timestamps, secondary indexes and paging.
//
// Secrets (enrollment and group symmetric keys, policy keys, webhook URLs)
// are sealed at this boundary when the store is built WithSealer (seal.go):
// plaintext in memory, ciphertext in every backend, and SealSecrets seals
// what an older zdps stored in the clear.
//
// Backends know nothing about enrollments; the typed layer knows nothing
// about engines. Everything a second replica needs lives in a Backend, so a
// shared backend (PostgreSQL) makes zdps replicas stateless.
//
// Errors: every failure a caller may act on is one of the sentinel errors
// below, wrapped with %w; callers test them with errors.Is.
package store
