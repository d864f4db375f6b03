// Package x509 verifies the certificate chain a device presents in the TLS
// handshake when it registers with X.509 attestation (docs/protocol.md#x509-client-certificates), and
// finds the enrollment that admits it.
//
// Security contract. Verify succeeds only when all of these hold:
//
//   - the chain has 1 to MaxChainLength certificates, leaf first;
//   - the leaf has exactly one subject CN, at most 64 characters, equal
//     (case-insensitively) to the registration ID;
//   - the leaf is within its validity period at the injected clock; when
//     it has a KeyUsage extension, the digitalSignature bit is set (Go's
//     Verify ignores KeyUsage); when it has an ExtKeyUsage extension, it
//     lists clientAuth (anyExtendedKeyUsage alone is not enough);
//   - and one of:
//   - an individual enrollment for the registration ID lists the leaf
//     itself (SHA-256 thumbprint) in clientCertificates; a self-signed
//     leaf is fine there, no chain is verified;
//   - an individual enrollment for the registration ID lists, in
//     clientCertificates, a CA certificate (a DICE DeviceID certificate)
//     and the chain verifies to it (the leaf is the Alias certificate);
//   - an individual enrollment for the registration ID references, in
//     caReferences, a registered CA certificate that is verified by proof
//     of possession, and the chain verifies to it;
//   - the first certificate above the leaf that an enrollment group names
//     (signingCertificates, or caReferences to a verified CA certificate)
//     anchors a chain that crypto/x509 verifies with that certificate as
//     the only root, the presented certificates in between as
//     intermediates, KeyUsages clientAuth (never any), and the injected
//     clock. "Above the leaf" means the presented certificates in order,
//     then registered CA certificates and group signing certificates that
//     issued the top of the presented chain, and so on up to
//     MaxChainLength certificates in all.
//
// Path validation treats the TCG DICE extensions (DiceTcbInfo, its legacy
// RIoT form, DiceMultiTcbInfo, DiceUeid) as handled when attestation/dice
// parses them, even when critical; every other unhandled critical
// extension of the path still fails it. Result.Chain is the verified path,
// from which a firmware policy may read measurements.
//
// An enabled individual enrollment for the registration ID that the chain
// does not match refuses the device: a group cannot take over an
// individually enrolled device. Verify reports the match whether it is
// enabled or disabled; when several groups name the same certificate, a
// disabled one wins, so that disabling a group always revokes its subtree.
//
// What the caller must still do: pass only certificates from a completed
// TLS handshake, which proved that the peer holds the leaf's private key
// (crypto/tls checks the CertificateVerify message even with
// tls.RequestClientCert); refuse disabled matches; and refuse a group match
// when a disabled individual enrollment exists for the registration ID
// (internal/provisioning does both). Verify never logs, and reads only
// certificates, enrollments and CA records.
package x509
