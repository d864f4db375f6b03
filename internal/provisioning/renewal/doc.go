// Package renewal lets a device renew its operational certificate by
// registering again over mutual TLS with the certificate zdps issued it and
// a new CSR: an X.509 attestation path whose trust anchor is zdps's own CA
// and whose enrollment is the device's registration record.
//
// The Attestor is wired as the pipeline's X.509 attestor. It routes each
// TLS client chain by its leaf: a leaf signed by zdps's issuing
// intermediate (issuer name and signature both checked) takes the renewal
// path and nothing else; any other chain goes to the X.509 enrollment walk
// (Config.Walk). So an operational certificate zdps issued is never
// evaluated by the enrollment walk, and an X.509 enrollment group anchored
// at zdps's own CA can never be satisfied by one.
//
// # Security contract
//
// A renewal is attested only when all of these hold:
//
//   - the request carries the chain of a completed TLS handshake (the
//     transport's job: the handshake proved possession of the leaf's key);
//   - the leaf verifies with crypto/x509 to zdps's root through zdps's
//     intermediate only (presented intermediates are ignored), for
//     clientAuth (never any), at the injected clock, hence within its
//     validity; a KeyUsage extension, when present, has digitalSignature;
//   - the Certificates collection holds a record for the leaf's serial
//     whose stored leaf is byte-for-byte the presented one, and that
//     record was issued to the request's registration ID (compared
//     case-insensitively). The subject CN is the device ID, which need not
//     be the registration ID: the record decides, never the CN;
//   - the record is not revoked (RevokedAt), and Config.Revocation, when
//     set, does not call it revoked;
//   - the registration record exists, is assigned, and still lists the
//     serial (a registration deleted, or deleted and re-created, refuses
//     the old certificates; the pipeline checks this again inside the
//     transaction that stores the new certificate);
//   - the enrollment the record names still exists: its enrollment group,
//     or else the individual enrollment of the registration ID. A disabled
//     one is returned, and the pipeline answers disabled.
//
// Every refusal wraps port.ErrUnauthorized and carries a fixed
// port.Refusal reason for the log; a store failure stays a server
// fault. The attestor logs nothing.
//
// What the pipeline does with a renewal (internal/provisioning): it requires a
// CSR (else ErrInvalid), keeps the record's device ID and hub (no
// reallocation, substatus unchanged), issues the new certificate from
// policy and stores it with the record in one transaction exactly as at a
// first registration. The old certificate stays valid until it expires or
// is revoked.
package renewal
