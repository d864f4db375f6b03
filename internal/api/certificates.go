package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/zdps/zdps/internal/api/apirequest"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/pkg/enrollment"
)

// VerificationCodeTTL is how long a proof-of-possession verification code
// is accepted after it was issued.
const VerificationCodeTTL = manage.VerificationCodeTTL

// verificationCodeAnswer answers POST /certificates/{name}/verificationCode.
type verificationCodeAnswer struct {
	Name                   string                          `json:"name"`
	VerificationCode       string                          `json:"verificationCode"`
	VerificationCodeExpiry time.Time                       `json:"verificationCodeExpiryUtc"`
	Info                   *enrollment.X509CertificateInfo `json:"info,omitempty"`
	IsVerified             bool                            `json:"isVerified"`
	ETag                   string                          `json:"etag,omitempty"`
}

// verifyRequest is the body of POST /certificates/{name}/verify.
type verifyRequest struct {
	Certificate string `json:"certificate"`
}

func (a *API) listCertificates(w http.ResponseWriter, r *http.Request) {
	listPage(a, w, r, "CACertificate", func(cont string, limit int) ([]*enrollment.CACertificate, string, error) {
		return a.uc.Certificates.CACertificates(r.Context(), cont, limit)
	}, (*enrollment.CACertificate).Redacted)
}

// verificationCode is the answer of POST .../verificationCode, which
// issues a fresh one-time code, replacing any outstanding one.
func verificationCode(c *enrollment.CACertificate) verificationCodeAnswer {
	return verificationCodeAnswer{
		Name: c.Name, VerificationCode: c.VerificationCode, VerificationCodeExpiry: *c.VerificationCodeExpiry,
		Info: c.Info, IsVerified: c.IsVerified, ETag: c.ETag,
	}
}

// verifyCertificate checks the proof of possession: a currently valid
// certificate whose subject CN is the outstanding code, signed by the
// registered CA's key. Success marks the CA verified and consumes the code.
func (a *API) verifyCertificate(w http.ResponseWriter, r *http.Request) {
	name, err := caCerts.pathID(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := apirequest.RequireBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req verifyRequest
	if err := strictJSON(b, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	proof, err := enrollment.ParseCertificate(req.Certificate)
	if err != nil {
		a.writeError(w, r, &enrollment.ValidationError{Field: "certificate", Reason: err.Error()})
		return
	}
	c, err := a.uc.Certificates.VerifyCACertificate(r.Context(), name, proof)
	if err != nil {
		a.writeError(w, r, about("certificate", name, err))
		return
	}
	a.audit(r, "verify", "certificate", c.Name)
	a.writeJSON(w, http.StatusOK, c.Redacted())
}

// strictJSON decodes exactly one JSON object into v, refusing unknown
// fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: unexpected data after the JSON value", errBadRequest)
	}
	return nil
}
