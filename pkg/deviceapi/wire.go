package deviceapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/zdps/zdps/pkg/enrollment"
)

// DeviceRegistration is the body of register and status lookup
// (docs/protocol.md#deviceregistration-request-body). It is a request type, separate from every stored model.
type DeviceRegistration struct {
	RegistrationID string     `json:"registrationId"`
	TPM            *DeviceTPM `json:"tpm,omitempty"`
	// Payload is any JSON value; nil when absent or null.
	Payload json.RawMessage `json:"payload,omitempty"`
	// CSR is base64 DER PKCS#10, no PEM armour.
	CSR string `json:"csr,omitempty"`
}

// DeviceTPM is the tpm object a TPM device sends: its EK and SRK, base64
// TPM2B_PUBLIC, and nothing else (the enrollment's zdps extensions are not
// device input).
type DeviceTPM struct {
	EndorsementKey string `json:"endorsementKey,omitempty"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
}

// maxCSRBase64 bounds the csr field before decoding; the CA refuses large
// CSRs anyway, this keeps the decoder from allocating for them.
const maxCSRBase64 = 64 << 10

// ErrBadRequest is wrapped by every decoding error of device input.
var ErrBadRequest = errors.New("deviceapi: bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// DecodeDeviceRegistration decodes a register body strictly: exactly one
// JSON object, no unknown fields (including in tpm), no trailing data, a
// string registrationId, a csr that is valid base64. A null payload counts
// as absent. Errors wrap ErrBadRequest and name what is wrong without
// quoting the body.
func DecodeDeviceRegistration(body []byte) (*DeviceRegistration, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("empty body: a DeviceRegistration JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var dr DeviceRegistration
	if err := dec.Decode(&dr); err != nil {
		return nil, badRequest("body is not a valid DeviceRegistration: %s", describe(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("unexpected data after the JSON object")
	}
	if bytes.Equal(bytes.TrimSpace(dr.Payload), []byte("null")) {
		dr.Payload = nil
	}
	if len(dr.CSR) > maxCSRBase64 {
		return nil, badRequest("csr is too large")
	}
	if dr.CSR != "" {
		if _, err := base64.StdEncoding.DecodeString(dr.CSR); err != nil {
			return nil, badRequest("csr must be base64 DER PKCS#10 (no PEM armour)")
		}
	}
	return &dr, nil
}

// CSRDER is the decoded csr, nil when absent. Call it only on a value
// DecodeDeviceRegistration returned.
func (d *DeviceRegistration) CSRDER() []byte {
	if d.CSR == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(d.CSR)
	if err != nil {
		return nil
	}
	return b
}

// describe turns an encoding/json error into a message that points at the
// problem without echoing values.
func describe(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte offset %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "a JSON object is required"
		}
		return fmt.Sprintf("field %s has the wrong type", typ.Field)
	}
	// encoding/json has no typed error for unknown fields.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if len(name) > 66 {
			name = name[:64] + `…"`
		}
		return "unknown field " + name
	}
	return "malformed JSON"
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
	// IssuedCertificateChain is base64 DER: leaf, intermediates, root.
	IssuedCertificateChain []string `json:"issuedCertificateChain,omitempty"`
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

// resultOf renders a stored record (and, for an operation, its chain).
func resultOf(r *enrollment.Registration, chain [][]byte) *DeviceRegistrationResult {
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

// operationStatus renders a stored operation.
func operationStatus(op *enrollment.Operation) *RegistrationOperationStatus {
	out := &RegistrationOperationStatus{OperationID: op.OperationID, Status: op.Status}
	if op.Status == enrollment.RegistrationAssigning {
		return out
	}
	rec := op.Registration
	if rec == nil {
		rec = &enrollment.Registration{RegistrationID: op.RegistrationID, Status: op.Status, ErrorCode: op.ErrorCode, ErrorMessage: op.ErrorMessage}
	}
	out.RegistrationState = resultOf(rec, op.IssuedCertificateChain)
	if op.TPMAuthenticationKey != "" {
		out.RegistrationState.TPM = &TPMRegistrationResult{AuthenticationKey: op.TPMAuthenticationKey}
	}
	return out
}
