// Package tpm is the verifier side of TPM 2.0 attestation as Azure IoT Hub
// DPS does it (docs/protocol.md#tpm-challenge): pure cryptography over TPM
// structures, no TPM needed.
//
//   - ParseEK and ParseSRK parse a device's TPM2B_PUBLIC and check it is a
//     standard RSA-2048 endorsement key (attributes 0x000300B2,
//     PolicySecret(endorsement) authPolicy, AES-128-CFB, SHA-256) or a
//     storage root key (RSA-2048 restricted decryption key fixed to its
//     TPM, AES-128-CFB, SHA-256). Anything else is refused.
//   - RegistrationID derives the default registration ID from the EK.
//   - MakeActivationBlob builds the six-part authenticationKey blob that
//     only the TPM holding both keys can import: MakeCredential to the EK
//     bound to Name(SRK) protects an AES-128 inner wrapping key, and an
//     HMAC-SHA256 key is duplicated to the SRK under that inner wrapper and
//     an outer wrapper. The device side's framing is pkg/dps's SplitActivationBlob.
//   - VerifyEKCertificate checks an EK certificate against manufacturer
//     roots and that it certifies the EK (beyond DPS).
//
// # Security contract
//
// What this package guarantees: a blob from MakeActivationBlob yields its
// key only to a TPM that can run ActivateCredential with the EK's private
// key for an object whose Name is the SRK's, and Import under that SRK.
// A device that later proves possession of the key (an HMAC, for DPS a SAS
// token) therefore holds the EK it presented — provided the caller:
//
//   - matches the EK against the enrollment (Public.Equal) before making a
//     blob, and refuses devices whose EK is not enrolled;
//   - keeps the key secret (never logs it) and single-use, with a short
//     expiry, and compares signatures in constant time (hmac.Equal);
//   - uses a fresh key from NewKey (crypto/rand) for each blob.
//
// It does not prove the EK is a genuine TPM's: that is the EK certificate
// (VerifyEKCertificate), or the enrollment process that recorded the EK.
// Parsers never panic and never quote their input in errors (they are
// fuzzed); every refusal wraps one of the package's sentinel errors.
package tpm
