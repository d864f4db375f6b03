// Package sas parses, verifies and builds Azure SharedAccessSignature
// tokens, the bearer tokens that authenticate both the service API (shared
// access policies) and devices with symmetric-key or TPM attestation:
//
//	SharedAccessSignature sr=<resource>&sig=<urlencoded base64 HMAC-SHA256(key, sr + "\n" + se)>&se=<unix seconds>[&skn=<key name>]
//
// Parse accepts the shapes the Azure SDKs send (fields in any order, sr
// percent-encoded in upper- or lower-case hex or not encoded at all, skn
// optional) and nothing looser: duplicate, unknown or missing fields, a
// non-numeric expiry or an oversized token are ErrMalformed.
//
// Security contract. Verify checks the expiry (with the caller's clock-skew
// allowance) and the HMAC, computed over the sr and se strings exactly as
// sent and compared in constant time. It does not check what the token is
// for: the caller must compare DecodedResource with the resource it expects
// (and KeyName with the policy, where relevant) and choose the key. A token
// is a bearer credential that stays valid until it expires, so it can be
// replayed within its lifetime; callers that need more bound the lifetime
// themselves. Tokens are secrets: never log them.
//
// The package depends on the standard library only.
package sas
