package enrollment

import "time"

// Operation is the stored outcome of one register call, keyed by its
// random operation ID, so that any replica can answer the device's poll
// (GET .../operations/{operationId}). It belongs to exactly one
// registration ID; a poll naming another registration ID must be answered
// as if the operation did not exist.
type Operation struct {
	Versioned
	OperationID    string `json:"operationId"`
	RegistrationID string `json:"registrationId"`
	// Status is assigning, assigned, failed or disabled.
	Status       string `json:"status"`
	ErrorCode    int    `json:"errorCode,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
	// Registration is a snapshot of the record this operation produced
	// (the record may change later; a poll answers what this operation
	// did). Nil while assigning.
	Registration *Registration `json:"registration,omitempty"`
	// IssuedCertificateChain is the chain issued by this operation (DER:
	// leaf, intermediates, root), empty when the device sent no CSR. The
	// certificates are public; the authoritative copy is the Certificate
	// record.
	IssuedCertificateChain [][]byte `json:"issuedCertificateChain,omitempty"`
	// IssuedCertificateSerial is the serial (hex) of the certificate this
	// operation issued. zdps stores it instead of the chain (the
	// Certificate record holds the chain, which a poll reads from there);
	// records written before hold the chain itself.
	IssuedCertificateSerial string `json:"issuedCertificateSerial,omitempty"`
	// TPMAuthenticationKey is the base64 activation blob of a TPM
	// registration (registrationState.tpm.authenticationKey): a key
	// encrypted to the device's TPM, useless to anyone else.
	TPMAuthenticationKey string `json:"tpmAuthenticationKey,omitempty"`
	// ExpiresAt bounds how long a poll may find the operation.
	ExpiresAt time.Time `json:"expiresAt"`
	// Deadline is set while the status is assigning: the registration
	// continues in the background on some replica, and if no final state
	// replaced this one by then, that replica is gone or stuck and a poll
	// answers failed (the registration is not completed late).
	Deadline time.Time `json:"deadline,omitzero"`
	// RequestHash identifies the register request of an assigning
	// operation (SHA-256 of the mechanism, CSR and payload), so that the
	// same request repeated while it is still assigning joins it instead
	// of starting a second run.
	RequestHash string `json:"requestHash,omitempty"`
	// RetryAfter is never stored: OperationStatus sets it on an assigning
	// operation to when the device's next poll is admitted by the poll
	// limit, for the transport's Retry-After (0: its default).
	RetryAfter time.Duration `json:"-"`
}

// StoreKey is the operation ID as issued: operation IDs are random and
// case-sensitive, but they are generated in lower case, so Key is harmless.
func (o *Operation) StoreKey() string { return Key(o.OperationID) }
