// Package castate is the stored state of zdps's embedded CA: its format
// (versions 1 to 3: sealed keys, keys in a KMS, a gateway's delegated CA),
// the sealing of its secrets with AES-256-GCM under a key derived from the
// KEK and bound to their role and to the state's certificates, encoding,
// and decoding with every check a loaded state must pass (the KEK, the
// chain, each key against its certificate, the previous roots and cross
// certificates against their seal). It exists apart from internal/ca so
// that what is stored and how it is verified is one package below both the
// running CA and the operations that write a new state (create, import,
// rotate, delegate).
//
// Security contract: Decode returns a state only when every sealed value
// opens under the KEK with the additional data of its role and
// certificates; a wrong KEK is ErrBadKEK, anything else that fails
// ErrCorruptState (a store writer without the KEK can neither read a key
// nor swap a certificate). Keys are parsed once and the DER cleared.
package castate
