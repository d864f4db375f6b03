package dps

import (
	"encoding/json"
	"time"
)

// The gateway API (zdps extension, docs/protocol.md#gateway-api): what an
// edge gateway and the central zdps exchange under GatewayPrefix. Both
// sides use these types, so the wire form is written once.

// GatewayPrefix is the path prefix of the gateway API.
const GatewayPrefix = "/gateway/v1"

// Kinds of a change of the feed.
const (
	ChangeEnrollment   = "enrollment"
	ChangeGroup        = "group"
	ChangeRegistration = "registration"
	ChangeSite         = "site"
)

// Operations of a change.
const (
	ChangeUpsert = "upsert"
	ChangeDelete = "delete"
)

// Statuses of one pushed record.
const (
	RecordStored    = "stored"
	RecordDuplicate = "duplicate"
	RecordConflict  = "conflict"
	// RecordRefused: refused for good (not of the gateway's site, a
	// certificate that does not verify, malformed); Error says why and
	// the gateway should not push it again.
	RecordRefused = "refused"
)

// GatewayCARequest is the body of POST /gateway/v1/ca.
type GatewayCARequest struct {
	// CSR is the base64 (standard, padded) DER PKCS#10 request of the
	// gateway's CA key.
	CSR string `json:"csr"`
}

// GatewayCAResponse answers POST /gateway/v1/ca.
type GatewayCAResponse struct {
	// CertificateChain is base64 DER: the delegated CA first, then
	// central's intermediate, then its root.
	CertificateChain []string `json:"certificateChain"`
}

// Change is one entry of the change feed.
type Change struct {
	// Seq orders the changes of one site; in the snapshot it is 0.
	Seq  uint64 `json:"seq"`
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Op   string `json:"op"`
	// Document is the wire JSON of the enrollment, group or site for an
	// upsert (absent for a delete), its symmetric keys sealed to the
	// gateway (SealedKey in place of each key string).
	Document json.RawMessage `json:"document,omitempty"`
}

// ChangesPage answers GET /gateway/v1/changes.
type ChangesPage struct {
	Changes []Change `json:"changes"`
	// Cursor is what to pass as cursor for the next page; store it only
	// after applying Changes.
	Cursor string `json:"cursor"`
	// More says another page is ready now.
	More bool `json:"more"`
}

// SealedKey is a symmetric key encrypted to the gateway with HPKE
// (RFC 9180, base mode, DHKEM(P-256) + HKDF-SHA256 + AES-128-GCM) to the
// public key of its TLS client certificate: info is GatewayKeyInfo, aad
// is "<kind>/<id>/<field>" (e.g. "enrollment/dev-1/primaryKey", the id as
// in the change), the plaintext the key's base64 text.
type SealedKey struct {
	// Enc is the base64 HPKE encapsulated key (65 bytes for P-256).
	Enc string `json:"enc"`
	// CT is the base64 ciphertext with its 16-byte tag.
	CT string `json:"ct"`
}

// GatewayKeyInfo is the HPKE info string of SealedKey.
const GatewayKeyInfo = "zdps gateway feed v1"

// GatewayRecord is one record a gateway pushes.
type GatewayRecord struct {
	// Registration is the record's service-API wire form
	// (RegistrationState of pkg/enrollment: registrationId, deviceId,
	// assignedHub, status, etag, createdDateTimeUtc, ...), etag as the
	// gateway stored it.
	Registration json.RawMessage `json:"registration"`
	// Certificate is the base64 DER leaf the gateway issued (absent when
	// the device sent no CSR).
	Certificate string `json:"certificate,omitempty"`
	// EnrollmentGroupID names the group the device registered through
	// ("" for an individual enrollment).
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	// AttestationType is the mechanism the device proved itself with.
	AttestationType string `json:"attestationType,omitempty"`
}

// GatewayRecords is the body of POST /gateway/v1/records.
type GatewayRecords struct {
	Records []GatewayRecord `json:"records"`
}

// GatewayRecordResult is what became of one pushed record.
type GatewayRecordResult struct {
	RegistrationID string `json:"registrationId"`
	// Status is stored, duplicate (this etag was stored before, or an
	// older one than central holds from this gateway) or conflict (the ID
	// is registered elsewhere too: see Winner).
	Status string `json:"status"`
	// Winner, for a conflict, is who keeps the registration: the
	// registration ID of a gateway, or "central".
	Winner string `json:"winner,omitempty"`
	// Revoked are the serials revoked by the conflict rule.
	Revoked []string `json:"revoked,omitempty"`
	// Error says why the record was refused (status refused).
	Error string `json:"error,omitempty"`
}

// GatewayRecordResults answers POST /gateway/v1/records, one result per
// record, in order.
type GatewayRecordResults struct {
	Results []GatewayRecordResult `json:"results"`
}

// GatewayAudit is the body of POST /gateway/v1/audit: events as the
// gateway recorded them, each with its ID.
type GatewayAudit struct {
	Events []AuditEvent `json:"events"`
}

// GatewayAuditResult answers POST /gateway/v1/audit.
type GatewayAuditResult struct {
	// Recorded and Duplicates count the events recorded now and those
	// recorded by an earlier push.
	Recorded   int `json:"recorded"`
	Duplicates int `json:"duplicates"`
}

// GatewayStatus is the body of POST /gateway/v1/status.
type GatewayStatus struct {
	LastSync   *time.Time `json:"lastSync,omitempty"`
	Backlog    int        `json:"backlog"`
	CANotAfter *time.Time `json:"caNotAfter,omitempty"`
	CASerial   string     `json:"caSerial,omitempty"`
}
