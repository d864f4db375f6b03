package port

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"time"

	"github.com/zdps/zdps/internal/store"
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
	// Transport is "https", "mqtt" or "mqtt-ws", for the audit trail and
	// metrics; "" when unknown.
	Transport string
	// Attested is what Authenticate set on the connection's request, nil
	// otherwise: the first register with the same credentials reuses it.
	Attested *Attested
}

// Identity is what an attestor proved: what every mechanism has. What
// one mechanism learned beyond it (a TPM proof, the X.509 chain and its
// DICE measurements, a renewal) is that mechanism's Evidence.
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
	// Evidence is the mechanism's own result, nil when it has none (a
	// symmetric key proves nothing beyond the identity).
	Evidence Evidence
}

// Evidence is what a mechanism learned beyond the Identity. The pipeline
// calls it at fixed points of Register and knows nothing of the
// mechanism; a mechanism embeds NoEvidence and implements what it needs.
type Evidence interface {
	// Check refuses, before anything is stored, evidence that cannot
	// register (a TPM challenge already spent), with an error wrapping
	// ErrUnauthorized.
	Check() error
	// Verdict, when not nil, ends the registration with a stored failed
	// operation (a DICE firmware policy violation): the device proved who
	// it is, and is told what refused it.
	Verdict() *Verdict
	// RenewalOf is the serial (lower-case hex) of the operational
	// certificate a renewing device authenticated with, "" when this is
	// no renewal. A renewal needs a CSR and keeps the record's device ID,
	// hub and substatus; the record must still list the serial when it
	// commits.
	RenewalOf() string
	// Claim runs inside the persisting transaction: single-use evidence
	// is consumed there, so at most one registration commits per proof
	// (an error wrapping ErrUnauthorized when another did). It reads and
	// writes only through tx (it may run twice under batching).
	Claim(ctx context.Context, tx store.Tx) error
	// Record sets, on the record about to be written, what it keeps of
	// this mechanism (the X.509 summary, the DICE state), given the
	// current record (nil at first registration). An error refuses the
	// registration and must wrap ErrUnauthorized or ErrInvalid.
	Record(rec, cur *enrollment.Registration) error
	// Answer adds to the assigned operation what only the device gets
	// (the TPM authentication key).
	Answer(op *enrollment.Operation)
}

// Verdict is a refusal that ends a registration with status failed.
type Verdict struct {
	// Code and Message are the operation's errorCode and errorMessage
	// (a Message names what refused, never a secret).
	Code    int
	Message string
	// Reason is the constant logged under "reason"; Attrs are more log
	// attributes (measurements, never secrets).
	Reason string
	Attrs  []any
}

// ReasonFirmwareRollback is the Verdict reason of a DICE device whose
// firmware SVN is below its policy's minimum.
const ReasonFirmwareRollback = "firmware rollback"

// NoEvidence is the Evidence of a mechanism that learned nothing more;
// mechanisms embed it.
type NoEvidence struct{}

func (NoEvidence) Check() error                                   { return nil }
func (NoEvidence) Verdict() *Verdict                              { return nil }
func (NoEvidence) RenewalOf() string                              { return "" }
func (NoEvidence) Claim(context.Context, store.Tx) error          { return nil }
func (NoEvidence) Record(rec, cur *enrollment.Registration) error { return nil }
func (NoEvidence) Answer(*enrollment.Operation)                   {}

// X509Summary is what a record keeps of an X.509 attestation: the
// presented leaf and, when the chain was verified to one, the signing
// certificate. Nil without a leaf.
func X509Summary(leaf, signing *x509.Certificate) *enrollment.RegistrationX509 {
	if leaf == nil {
		return nil
	}
	out := &enrollment.RegistrationX509{CertificateInfo: enrollment.CertificateInfo(leaf)}
	if signing != nil {
		out.SigningCertificateInfo = enrollment.CertificateInfo(signing)
	}
	return out
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
