// Package gatewaykey seals the symmetric keys of the change feed to an
// edge gateway and opens them there: HPKE (RFC 9180, base mode,
// DHKEM(P-256) + HKDF-SHA256 + AES-128-GCM, Go's crypto/hpke) to the
// ECDSA P-256 public key of the gateway's TLS client certificate, each key
// bound by its AAD to the document and field it belongs to, so a sealed
// key cannot be moved to another enrollment. The wire shape is
// dps.SealedKey (docs/protocol.md#gateway-api). Standard library only.
package gatewaykey
