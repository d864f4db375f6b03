package enrollment

import "time"

// Certificate is an operational certificate issued to a device, stored in
// the same transaction as the registration record that names it, so that
// every certificate zdps ever returned can be found and revoked.
type Certificate struct {
	Versioned
	// Serial is the lower-case hexadecimal serial number, unique per CA.
	Serial         string `json:"serial"`
	RegistrationID string `json:"registrationId"`
	DeviceID       string `json:"deviceId"`
	// OperationID is the register operation that issued it.
	OperationID string    `json:"operationId,omitempty"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	// Chain is the DER chain as issued: leaf, intermediates, root.
	Chain [][]byte `json:"chain"`
	// RevokedAt is set when the certificate is revoked. It is kept in the
	// store, never only in memory, so that every replica lists it in its
	// CRL and refuses it for renewal.
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	// RevocationReason is the RFC 5280 CRLReason code of the revocation
	// (0 unspecified, 5 cessationOfOperation, 9 privilegeWithdrawn, ...);
	// meaningful only when RevokedAt is set.
	RevocationReason int `json:"revocationReason,omitempty"`
}

// Revoked reports whether the certificate has been revoked.
func (c *Certificate) Revoked() bool { return c.RevokedAt != nil }

// StoreKey is the serial in lower case.
func (c *Certificate) StoreKey() string { return Key(c.Serial) }
