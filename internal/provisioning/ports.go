package provisioning

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Request is one device request as the transport received it. The
// transport has decoded and size-limited it; the pipeline trusts none of
// its content.
type Request struct {
	// IDScope is the ID scope of the request path.
	IDScope string
	// RegistrationID is the percent-decoded registration ID of the path (the
	// transport has checked that the body names the same one).
	RegistrationID string
	// Authorization is the Authorization header (a SAS for symmetric keys
	// and TPM), "" when absent. Never logged.
	Authorization string
	// ClientCertificates is the TLS peer chain, leaf first (X.509).
	ClientCertificates []*x509.Certificate
	// TPM is the body's tpm object (TPM attestation).
	TPM *enrollment.TPMAttestation
	// Payload is the body's payload, any JSON; nil when absent.
	Payload json.RawMessage
	// CSR is the DER PKCS#10 of the body's csr (the transport decoded the
	// base64); nil when absent.
	CSR []byte
	// RemoteAddr is the device's network address (host:port) as the
	// transport saw it, "" when unknown; the geoLatency policy may map it
	// to a region.
	RemoteAddr string
	// RTT is the round-trip time the transport measured to the device (the
	// kernel's estimate on its TCP connection), 0 when unknown; the
	// geoLatency policy may place a nearby device in this instance's
	// region.
	RTT time.Duration
}

// Identity is what an attestor proved.
type Identity struct {
	// Type is the mechanism: enrollment.AttestationSymmetricKey,
	// AttestationX509 or AttestationTPM.
	Type string
	// RegistrationID is the attested registration ID; it must equal the
	// request's (case-insensitively).
	RegistrationID string
	// Enrollment is the individual enrollment whose credential the device
	// proved, or nil.
	Enrollment *enrollment.IndividualEnrollment
	// Group is the enrollment group whose credential the device proved
	// (only when Enrollment is nil), or nil.
	Group *enrollment.EnrollmentGroup
	// TPM is the proof of a TPM device that answered its challenge
	// (tpm.go), nil for other mechanisms.
	TPM *TPMProof
	// Certificate is the leaf the device presented (X.509), nil for other
	// mechanisms. The record keeps its summary (registrationState.x509).
	Certificate *x509.Certificate
	// SigningCertificate is the certificate the chain was verified to, nil
	// when there is none (an individual enrollment listing the leaf).
	SigningCertificate *x509.Certificate
	// Renewal is set when the device authenticated with an operational
	// certificate that zdps issued to this registration: the pipeline then
	// requires a CSR, keeps device ID and hub, and issues a new
	// certificate (see Register).
	Renewal *Renewal
	// DICE is the DeviceID key and firmware measurements of a DICE chain
	// (X.509), nil otherwise; the record keeps it (dice.go).
	DICE *enrollment.DICEState
	// FirmwareViolation, when not "", is why the enrollment's DICE
	// firmware policy refuses the device: Register answers status failed
	// with it as errorMessage (dice.go). It names a layer and a
	// measurement, never a secret.
	FirmwareViolation string
}

// Renewal says which operational certificate a renewing device presented.
type Renewal struct {
	// Serial of the presented certificate, as stored (lower-case hex). The
	// registration record must still list it when the renewal commits.
	Serial string
}

// Attestor verifies one attestation mechanism.
//
// Contract: Attest returns an Identity only when the request proves
// possession of a credential of the returned enrollment or group, whatever
// that enrollment's provisioning status (the pipeline decides what a
// disabled enrollment gets). Every refusal of device input wraps
// ErrUnauthorized; any other error is a server fault. Attest never logs a
// credential.
type Attestor interface {
	Attest(ctx context.Context, req *Request) (*Identity, error)
}

// LeafPolicy is what the issuer puts into an operational certificate.
type LeafPolicy struct {
	// RegistrationID must equal the CSR's common name exactly.
	RegistrationID string
	// DeviceID becomes the subject CN.
	DeviceID string
	// Validity; zero means the issuer's default.
	Validity time.Duration
}

// Issued is an issued certificate.
type Issued struct {
	// Serial in lower-case hexadecimal, unique per CA.
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
	// Chain is DER: leaf, intermediates, root.
	Chain [][]byte
}

// Issuer signs CSRs.
//
// Contract: a CSR refused as device input (malformed, weak key, bad
// signature, CN other than LeafPolicy.RegistrationID) wraps ErrInvalid; any
// other error is a server fault. The issuer keeps no record: the pipeline
// stores what it issued before returning it.
type Issuer interface {
	Issue(ctx context.Context, csrDER []byte, p LeafPolicy) (*Issued, error)
}
