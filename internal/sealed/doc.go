// Package sealed encrypts small secrets (symmetric keys, policy keys,
// webhook URLs) for storage, under a key derived from zdps's key-encryption
// key (KEK).
//
// A Box derives its own AES-256 key from the KEK with HKDF-SHA256 and the
// info string "zdps secrets v1 aes-256-gcm", so it never shares a key with
// the CA's sealed private keys (internal/ca), which derive theirs under another
// info string from the same KEK. Every Seal draws a fresh random 96-bit
// nonce.
//
// The stored form is self-describing text: Prefix ("zdps:v1:") followed by
// standard base64 of nonce || ciphertext || GCM tag. IsSealed tells it apart
// from a legacy plaintext value; a key, being base64, can never contain ':',
// and a webhook URL starts with its scheme, so neither is ever mistaken for
// a sealed value.
//
// Security contract: the caller supplies associated data naming the value's
// place (record and field, e.g. "enrollments/<id>/…primaryKey"). Open fails
// with ErrOpen, never with garbage, when the KEK differs, the stored value
// was altered, or it was moved to another record or field. The associated
// data must name nothing specific to one store (no file path, no schema),
// so that a store copied byte for byte (zdps migrate) opens under the same
// KEK.
//
// Cost: Open of a 64-byte key is about 0.4 µs, Seal about 1 µs (the nonce
// comes from crypto/rand); BenchmarkOpen, BenchmarkSeal. There is no cache
// of opened values: one keyed by the stored form was tried and saved only
// 40% of an Open, for a table of plaintext keys in memory.
package sealed
