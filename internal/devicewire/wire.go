package devicewire

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ErrBadRequest is wrapped by every decoding error of device input, the
// wire contract's own.
var ErrBadRequest = dps.ErrBadRequest

// BadRequest is an error wrapping ErrBadRequest with a message for the
// device.
func BadRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// RegistrationOperationStatus is the answer of register and of the
// operation poll.
type RegistrationOperationStatus struct {
	OperationID       string                    `json:"operationId"`
	Status            string                    `json:"status"`
	RegistrationState *DeviceRegistrationResult `json:"registrationState,omitempty"`
}

// DeviceRegistrationResult is the device's view of its registration: the
// DPS registration state plus what only the device gets.
type DeviceRegistrationResult struct {
	enrollment.RegistrationState
	Payload      json.RawMessage         `json:"payload,omitempty"`
	TPM          *TPMRegistrationResult  `json:"tpm,omitempty"`
	X509         *X509RegistrationResult `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyResult     `json:"symmetricKey,omitempty"`
	// IssuedCertificateChain is base64 DER: leaf, intermediates, root (the
	// HTTPS preview's form, answered to a csr).
	IssuedCertificateChain []string `json:"issuedCertificateChain,omitempty"`
	// IssuedClientCertificate and TrustBundle are the newer SDKs' form,
	// answered to a clientCertificateCsr (CSRFormNew).
	IssuedClientCertificate string       `json:"issuedClientCertificate,omitempty"`
	TrustBundle             *TrustBundle `json:"trustBundle,omitempty"`
}

// TrustBundle carries the CA certificates of an issued certificate in the
// shape of the newer SDKs' trustBundle.
type TrustBundle struct {
	Certificates []TrustBundleCertificate `json:"certificates"`
}

// TrustBundleCertificate is one PEM certificate of a TrustBundle.
type TrustBundleCertificate struct {
	Certificate string `json:"certificate"`
}

// TPMRegistrationResult carries the key blob of TPM attestation.
type TPMRegistrationResult struct {
	AuthenticationKey string `json:"authenticationKey,omitempty"`
}

// X509RegistrationResult says which enrollment admitted an X.509 device.
type X509RegistrationResult struct {
	CertificateInfo        *enrollment.X509CertificateInfo `json:"certificateInfo,omitempty"`
	EnrollmentGroupID      string                          `json:"enrollmentGroupId,omitempty"`
	SigningCertificateInfo *enrollment.X509CertificateInfo `json:"signingCertificateInfo,omitempty"`
}

// SymmetricKeyResult names the group of a symmetric-key device.
type SymmetricKeyResult struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// ResultOf renders a stored record (and, for an operation, its chain).
func ResultOf(r *enrollment.Registration, chain [][]byte) *DeviceRegistrationResult {
	out := &DeviceRegistrationResult{RegistrationState: *r.State(), Payload: r.Payload}
	switch r.AttestationType {
	case enrollment.AttestationSymmetricKey:
		out.SymmetricKey = &SymmetricKeyResult{EnrollmentGroupID: r.EnrollmentGroupID}
	case enrollment.AttestationX509:
		out.X509 = &X509RegistrationResult{EnrollmentGroupID: r.EnrollmentGroupID}
		if r.X509 != nil {
			out.X509.CertificateInfo = r.X509.CertificateInfo
			out.X509.SigningCertificateInfo = r.X509.SigningCertificateInfo
		}
	}
	for _, c := range chain {
		out.IssuedCertificateChain = append(out.IssuedCertificateChain, base64.StdEncoding.EncodeToString(c))
	}
	return out
}

// OperationStatus renders a stored operation.
func OperationStatus(op *enrollment.Operation) *RegistrationOperationStatus {
	out := &RegistrationOperationStatus{OperationID: op.OperationID, Status: op.Status}
	if op.Status == enrollment.RegistrationAssigning {
		return out
	}
	rec := op.Registration
	if rec == nil {
		rec = &enrollment.Registration{RegistrationID: op.RegistrationID, Status: op.Status, ErrorCode: op.ErrorCode, ErrorMessage: op.ErrorMessage}
	}
	out.RegistrationState = ResultOf(rec, op.IssuedCertificateChain)
	if op.TPMAuthenticationKey != "" {
		out.RegistrationState.TPM = &TPMRegistrationResult{AuthenticationKey: op.TPMAuthenticationKey}
	}
	return out
}

// OperationStatusIn renders a stored operation for a register body whose
// CSR came in form (dps.CSRForm*): a clientCertificateCsr is answered with
// issuedClientCertificate (the leaf, PEM or base64 DER as the CSR was) and
// trustBundle (the rest of the chain, PEM), a csr with
// issuedCertificateChain (OperationStatus).
func OperationStatusIn(op *enrollment.Operation, form string) *RegistrationOperationStatus {
	out := OperationStatus(op)
	if form != dps.CSRFormPEM && form != dps.CSRFormDER {
		return out
	}
	rs := out.RegistrationState
	if rs == nil || len(op.IssuedCertificateChain) == 0 {
		return out
	}
	rs.IssuedCertificateChain = nil
	leaf := op.IssuedCertificateChain[0]
	if form == dps.CSRFormPEM {
		rs.IssuedClientCertificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}))
	} else {
		rs.IssuedClientCertificate = base64.StdEncoding.EncodeToString(leaf)
	}
	rs.TrustBundle = &TrustBundle{Certificates: []TrustBundleCertificate{}}
	for _, c := range op.IssuedCertificateChain[1:] {
		rs.TrustBundle.Certificates = append(rs.TrustBundle.Certificates, TrustBundleCertificate{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c}))})
	}
	return out
}
