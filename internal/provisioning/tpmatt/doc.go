// Package tpmatt plugs TPM attestation (attestation/tpm) into the
// provisioning pipeline, as Azure IoT Hub DPS runs it (docs/protocol.md#tpm-challenge).
//
//   - Round one: a register with tpm{endorsementKey, storageRootKey} and no
//     Authorization. The EK must equal the EK of the individual enrollment
//     of the registration ID (TPM is individual-only) and, when required
//     (Config.EKRequired or the enrollment's
//     requireEndorsementKeyCertificate) or supplied (the payload's
//     tpmEkCertificate, else the enrollment's endorsementKeyCertificate),
//     carry an EK certificate that chains to EKRoots. The attestor draws a 32-byte
//     HMAC key, stores it with a short expiry (ChallengeTTL) and answers a
//     *port.TPMChallenge with the activation blob.
//   - Round two: the same body plus a SAS whose sig is TPM2_HMAC with that
//     key. The attestor verifies it in constant time against the stored
//     keys and returns an Identity with a port.TPMProof: the
//     pipeline claims the key in the transaction that persists the
//     registration, and answers a second blob (a fresh key) as
//     registrationState.tpm.authenticationKey.
//   - Polls and status lookups carry the SAS and no body; the pipeline
//     routes them here by the enrollment's attestation type, and a spent
//     key opens them for PollWindow.
//
// # Security contract
//
//   - Challenge keys live in the store (bucket "tpm-challenges"), not in
//     memory, so any replica verifies round two. They are kept in the
//     clear, like the enrollments' symmetric keys: they are short-lived
//     (5 minutes by default), and protecting the store protects them. They
//     are never logged, never answered, and never leave the package except
//     inside a blob encrypted to the device's TPM. Attestor.PruneExpired
//     deletes the documents whose keys are all unusable (`zdps serve` runs
//     it every --prune-interval), so the keys of a device that never comes
//     back do not stay in the store.
//   - A key is single-use: Register refuses a spent key before any work,
//     and the claim inside the persisting transaction makes concurrent
//     second rounds commit at most one registration. A SAS replayed after
//     success (beyond polls), after the key expired, or after the
//     enrollment's EK changed is refused.
//   - At most MaxPending keys are kept per registration ID: a stranger
//     who knows a device's public EK and SRK cannot grow the store, and
//     cannot void the device's pending challenge with a single request.
//   - Only enrolled EKs get a challenge; refusals are
//     port.ErrUnauthorized with a fixed reason (a malformed EK or
//     SRK is port.ErrInvalid); store failures are server faults.
//   - The key of the assigned answer is not kept: zdps has no hub to hand
//     it to (the device's hub credential is the issued certificate).
package tpmatt
