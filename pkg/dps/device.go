package dps

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DeviceRegistration is the body of register and status lookup
// (docs/protocol.md#deviceregistration-request-body). It is a request type, separate from every stored model.
type DeviceRegistration struct {
	RegistrationID string     `json:"registrationId"`
	TPM            *DeviceTPM `json:"tpm,omitempty"`
	// Payload is any JSON value; nil when absent or null.
	Payload json.RawMessage `json:"payload,omitempty"`
	// CSR is base64 DER PKCS#10, no PEM armour (the HTTPS preview's
	// field; its answer carries issuedCertificateChain).
	CSR string `json:"csr,omitempty"`
	// ClientCertificateCSR is the newer SDKs' field (the Embedded C SDK's
	// az_iot_provisioning_client): PKCS#10 as PEM or as base64 DER. Its
	// answer carries issuedClientCertificate and trustBundle in the same
	// encoding (CSRForm). At most one of CSR and ClientCertificateCSR.
	ClientCertificateCSR string `json:"clientCertificateCsr,omitempty"`
}

// CSR forms (CSRForm): how a register body sent its CSR, and so how its
// answer carries the issued certificate.
const (
	// CSRFormNone: no CSR.
	CSRFormNone = ""
	// CSRFormChain: csr, answered with issuedCertificateChain (base64 DER).
	CSRFormChain = "csr"
	// CSRFormPEM: clientCertificateCsr as PEM, answered with
	// issuedClientCertificate and trustBundle as PEM.
	CSRFormPEM = "clientCertificateCsr/pem"
	// CSRFormDER: clientCertificateCsr as base64 DER, answered with
	// issuedClientCertificate as base64 DER and trustBundle as PEM (its
	// certificates are PEM in Azure's trust bundle format).
	CSRFormDER = "clientCertificateCsr/der"
)

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
var ErrBadRequest = errors.New("dps: bad request")

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
	if len(dr.ClientCertificateCSR) > maxCSRBase64 {
		return nil, badRequest("clientCertificateCsr is too large")
	}
	if dr.CSR != "" && dr.ClientCertificateCSR != "" {
		return nil, badRequest("csr and clientCertificateCsr exclude each other")
	}
	if dr.CSR != "" {
		if _, err := base64.StdEncoding.DecodeString(dr.CSR); err != nil {
			return nil, badRequest("csr must be base64 DER PKCS#10 (no PEM armour)")
		}
	}
	if dr.ClientCertificateCSR != "" && decodeNewCSR(dr.ClientCertificateCSR) == nil {
		return nil, badRequest("clientCertificateCsr must be a PEM CERTIFICATE REQUEST or base64 DER PKCS#10")
	}
	return &dr, nil
}

// decodeNewCSR decodes a clientCertificateCsr: one PEM CERTIFICATE
// REQUEST block, or base64 DER; nil when it is neither.
func decodeNewCSR(s string) []byte {
	if strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN") {
		b, rest := pem.Decode([]byte(s))
		if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") || len(bytes.TrimSpace(rest)) != 0 || len(b.Bytes) == 0 {
			return nil
		}
		return b.Bytes
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

// CSRDER is the decoded CSR (csr or clientCertificateCsr), nil when
// absent. Call it only on a value DecodeDeviceRegistration returned.
func (d *DeviceRegistration) CSRDER() []byte {
	if d.ClientCertificateCSR != "" {
		return decodeNewCSR(d.ClientCertificateCSR)
	}
	if d.CSR == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(d.CSR)
	if err != nil {
		return nil
	}
	return b
}

// CSRForm says which field carried the CSR and in which encoding; its
// answer uses the same (the CSRForm constants).
func (d *DeviceRegistration) CSRForm() string {
	switch {
	case d == nil:
		return CSRFormNone
	case d.ClientCertificateCSR != "" && strings.HasPrefix(strings.TrimSpace(d.ClientCertificateCSR), "-----BEGIN"):
		return CSRFormPEM
	case d.ClientCertificateCSR != "":
		return CSRFormDER
	case d.CSR != "":
		return CSRFormChain
	}
	return CSRFormNone
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
