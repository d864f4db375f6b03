// Package symmetric verifies the SharedAccessSignature a device presents at
// registration when it attests with a symmetric key, either its own key
// (individual enrollment) or a key derived from an enrollment group key
// (HMAC-SHA256(groupKey, registrationId), docs/protocol.md#symmetric-keys-and-sas-tokens).
//
// Security contract. Verify succeeds only when the token is well formed,
// not expired beyond the configured skew, its decoded sr equals
// "{idScope}/registrations/{registrationId}" (case-insensitively), and its
// signature matches, in constant time, one of:
//
//   - the primary or secondary key of the individual enrollment for the
//     registration ID, when that enrollment uses symmetric-key attestation;
//     such an enrollment decides alone: when its keys fail, groups are not
//     tried, so a group key holder cannot take over an individually
//     enrolled device;
//   - otherwise, a key derived from the primary or secondary key of a
//     symmetric-key enrollment group. A group key itself is never accepted
//     as a device key.
//
// What the caller must still do: pass the instance's own ID scope and the
// registration ID from the request path (decoded); refuse disabled
// enrollments and disabled groups (Verify reports the match, enabled or
// not, so the pipeline can answer "disabled" as DPS does); and accept that
// a token is a bearer credential, valid for every request until it expires
// (the SDKs reuse it for every poll). Verify never logs; tokens and keys
// are secrets.
package symmetric
