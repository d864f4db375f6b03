// Package enrollment holds zdps's domain model: individual enrollments,
// enrollment groups, registration records, linked hubs, shared access
// policies and instance settings, in the JSON wire form of the Azure IoT Hub
// DPS service API (field names and casing exactly as DPS writes them).
//
// Security contract. Every value that arrives from a request must pass
// through one of the Decode functions, which
//
//   - decode strictly: one JSON value, no trailing data, unknown fields
//     refused (field names match case-insensitively, as in DPS);
//   - drop the read-only fields (etag, createdDateTimeUtc,
//     lastUpdatedDateTimeUtc, registrationState, a settings' idScope), so a
//     request can never set them; bulk items keep their etag only, because
//     updateIfMatchETag compares it;
//   - validate and normalise (Validate): IDs, host names, key lengths,
//     certificates, allocation policy names; X.509 certificate info is
//     always computed from the certificate, never taken from the request.
//
// Every error they return wraps ErrInvalid and is a *ValidationError naming
// the field (both are package check's, which holds the rules of single
// fields), with a message fit to show to the caller. Nothing else in zdps
// trusts request JSON. Bulk items are decoded but not validated: the API
// calls Validate on each and reports per-item errors.
//
// Stored values hold secrets (symmetric keys, policy keys). GET answers use
// Redacted, which drops them and replaces certificates by their info; keys
// leave only through the attestation-mechanism call. Compare keys with
// hmac.Equal or subtle.ConstantTimeCompare, never ==.
//
// The package depends on the standard library only, besides its own
// subpackages firmware and check, which do too.
package enrollment
