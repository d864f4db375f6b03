// Package ca is zdps's embedded certificate authority: a root and one issuing
// intermediate that sign device operational certificates, zdps's own TLS
// server certificate and the certificate revocation list.
//
// # What it owns
//
// The CA state (two certificates and their private keys) lives behind the
// two-method Storage interface; BackendStorage keeps it in a store.Backend
// under bucket "ca", key "state". New loads the state, or creates it on first
// start with create-if-absent semantics, so replicas that start together end
// with one CA: the loser of the race reloads the winner's. Import brings an
// operator's existing CA instead.
//
// Private keys are sealed with AES-256-GCM under a key derived (HKDF-SHA256)
// from Config.KEK. The additional data binds each sealed key to its role and
// to the exact root and intermediate certificates of the state, so a store
// writer who lacks the KEK can neither read the keys nor swap a certificate
// (for example to make zdps trust a root of their own) without New failing
// with ErrCorruptState. A wrong KEK fails with ErrBadKEK, never with garbage.
// The root key is decrypted once at start to check it, then dropped: issuing
// needs only the intermediate key, which is parsed once and kept in memory.
//
// # Security contract of SignCSR
//
// SignCSR handles device input. It guarantees:
//   - the CSR is DER PKCS#10 of at most MaxCSRSize bytes with no trailing data
//     (else ErrCSRMalformed);
//   - its key is ECDSA P-256 or P-384, Ed25519, or RSA of 2048 to 8192 bits
//     (else ErrCSRKey). P-224 is refused as too weak, P-521 because DPS
//     devices do not use it and the list of key types leaves it out;
//   - its self-signature verifies, with no MD5 or SHA-1 (else ErrCSRSignature);
//   - its subject has exactly one common name, byte-for-byte equal to
//     LeafPolicy.RegistrationID (else ErrCSRSubject). The comparison is exact,
//     as Azure DPS does: pass the registration ID as the device sent it;
//   - the certificate is built from the policy only: nothing but the public
//     key is taken from the CSR (no subject attribute, SAN, extension, key
//     usage or basic constraint). Subject CN = device ID, a 128-bit random
//     serial, ExtKeyUsage clientAuth, CA=false.
//
// What the caller must still do: authenticate the device (attestation) and
// decide the policy; store the issued certificate with the registration
// record in one transaction and not return it if that write fails (the CA
// keeps no record of what it issued, so an unstored certificate could never
// be revoked); keep revoked serials and CRL numbers in the store and pass
// them to CRL.
//
// # Keys in a KMS, offline root, rotation
//
// With Config.KMS the intermediate's key and zdps's TLS key are created
// inside a KMS (internal/cakms: PKCS#11, TPM) and the state keeps only their
// references, sealed like the keys (state version 2). Create with
// OfflineRoot hands the root key out instead of storing it; SignIntermediate
// signs a later intermediate with it, away from the server.
//
// The stored state's format, sealing and checks are internal/ca/castate's.
// internal/ca/rotation replaces the intermediate (Rotate: a new key,
// sealed or in the KMS, signed by the stored root key) with a
// compare-and-swap of the state, and keeps the outgoing one in the bundle,
// with its key for PreviousCRL, for the overlap (the longest leaf
// validity); the next rotation after it retires it. With an offline root,
// PrepareRotation keeps the next key pending and returns its CSR, and
// Rotate installs the certificate signed for it. RotateRoot replaces the
// root too and has the old root issue the new intermediate a second time
// (the cross certificate in the bundle); the old root stays in the trust
// pool for the overlap. A running CA switches when Reload sees a new
// state; Watch polls, so replicas on a shared store switch together
// without a restart. Each signature uses one generation throughout.
//
// A CA is safe for concurrent use.
//
// Errors are the sentinels in errors.go, wrapped with %w; test them with
// errors.Is.
package ca
