// Package rotation replaces the embedded CA's state: Rotate issues a new
// intermediate (a new key, sealed or in the KMS, signed by the stored
// root key, or with an offline root the certificate signed for the key
// PrepareRotation made) and keeps the outgoing one, able to sign its CRL,
// for the overlap; RotateRoot makes a new root and intermediate and has
// the old root issue that intermediate again (the cross certificate), the
// old root trusted for the overlap. Each swaps the stored state with a
// compare-and-swap, running the caller's audit in the same transaction;
// running CAs (internal/ca) switch when they reload it. It exists apart
// from internal/ca so that the running CA (loading, signing, reloading)
// and the operations that write its next state are each one package,
// both over internal/ca/castate.
//
// A delegated CA (an edge gateway's) never rotates: ca.ErrDelegated.
//
// Its tests run in internal/ca as package ca_test (rotate_test.go,
// rootrotate_test.go), beside the running CA's, whose test helpers they
// share through internal/ca's export_test.go.
package rotation
