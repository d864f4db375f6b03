package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
)

// VerificationCodeTTL is how long a proof-of-possession verification code
// is accepted after it was issued.
const VerificationCodeTTL = time.Hour

// verificationCodeBytes is the entropy of a code: 128 bits, written as 32
// upper-case hex digits (a subject CN holds 64 characters).
const verificationCodeBytes = 16

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

func caPathName(r *http.Request) (string, error) {
	name := chi.URLParam(r, "name")
	return name, enrollment.ValidateCACertificateName(name)
}

func (a *API) listCertificates(w http.ResponseWriter, r *http.Request) {
	listPage(a, w, r, "CACertificate", func(cont string, limit int) ([]*enrollment.CACertificate, string, error) {
		return a.store.CACertificates.List(r.Context(), cont, limit)
	}, (*enrollment.CACertificate).Redacted)
}

func (a *API) getCertificate(w http.ResponseWriter, r *http.Request) {
	name, err := caPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.store.CACertificates.Get(r.Context(), name)
	if err != nil {
		a.writeError(w, r, about("certificate", name, err))
		return
	}
	a.writeJSON(w, http.StatusOK, c.Redacted())
}

// putCertificate registers or replaces a CA certificate. Replacing it with
// another certificate clears the verification (a proof is about one key);
// writing the same certificate again keeps it.
func (a *API) putCertificate(w http.ResponseWriter, r *http.Request) {
	name, c, cond, err := putRequest(r, caPathName, enrollment.DecodeCACertificate, func(c *enrollment.CACertificate) string { return c.Name }, "name")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var created bool
	err = a.store.Backend.Update(r.Context(), func(tx store.Tx) error {
		col := a.store.CACertificates.In(tx)
		c.IsVerified, c.VerificationCode, c.VerificationCodeExpiry = false, "", nil
		old, err := col.Get(r.Context(), name)
		switch {
		case err == nil:
			if old.Info != nil && c.Info != nil && old.Info.SHA256Thumbprint == c.Info.SHA256Thumbprint {
				c.IsVerified, c.VerificationCode, c.VerificationCodeExpiry = old.IsVerified, old.VerificationCode, old.VerificationCodeExpiry
			}
		case !isNotFound(err):
			return err
		}
		created, err = col.Put(r.Context(), c, cond)
		return err
	})
	if err != nil {
		a.writeError(w, r, about("certificate", name, preconditionOnMissing(err, cond)))
		return
	}
	a.audit(r, createdOrUpdated(created), "certificate", c.Name)
	a.writeJSON(w, http.StatusOK, c.Redacted())
}

func (a *API) deleteCertificate(w http.ResponseWriter, r *http.Request) {
	name, err := caPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.CACertificates.Delete(r.Context(), name, store.Condition{IfMatch: ifMatch(r)}); err != nil {
		a.writeError(w, r, about("certificate", name, err))
		return
	}
	a.audit(r, "delete", "certificate", name)
	w.WriteHeader(http.StatusNoContent)
}

// certificateVerificationCode issues a fresh one-time code, replacing any
// outstanding one.
func (a *API) certificateVerificationCode(w http.ResponseWriter, r *http.Request) {
	name, err := caPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	// Generated before the transaction, which may run more than once.
	raw := make([]byte, verificationCodeBytes)
	if _, err := io.ReadFull(a.rand, raw); err != nil {
		a.writeError(w, r, fmt.Errorf("verification code: %w", err))
		return
	}
	code := strings.ToUpper(hex.EncodeToString(raw))
	expiry := a.now().UTC().Add(VerificationCodeTTL).Truncate(time.Second)
	var c *enrollment.CACertificate
	err = a.store.Backend.Update(r.Context(), func(tx store.Tx) error {
		col := a.store.CACertificates.In(tx)
		var err error
		if c, err = col.Get(r.Context(), name); err != nil {
			return err
		}
		c.VerificationCode, c.VerificationCodeExpiry = code, &expiry
		_, err = col.Put(r.Context(), c, store.Condition{IfMatch: c.ETag})
		return err
	})
	if err != nil {
		a.writeError(w, r, about("certificate", name, err))
		return
	}
	a.audit(r, "verification-code", "certificate", c.Name)
	a.writeJSON(w, http.StatusOK, verificationCodeAnswer{
		Name: c.Name, VerificationCode: code, VerificationCodeExpiry: expiry,
		Info: c.Info, IsVerified: c.IsVerified, ETag: c.ETag,
	})
}

// verifyCertificate checks the proof of possession: a currently valid
// certificate whose subject CN is the outstanding code, signed by the
// registered CA's key. Success marks the CA verified and consumes the code.
func (a *API) verifyCertificate(w http.ResponseWriter, r *http.Request) {
	name, err := caPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := requireBody(r)
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
	var c *enrollment.CACertificate
	err = a.store.Backend.Update(r.Context(), func(tx store.Tx) error {
		col := a.store.CACertificates.In(tx)
		var err error
		if c, err = col.Get(r.Context(), name); err != nil {
			return err
		}
		if err := a.checkProof(c, proof); err != nil {
			return err
		}
		c.IsVerified, c.VerificationCode, c.VerificationCodeExpiry = true, "", nil
		_, err = col.Put(r.Context(), c, store.Condition{IfMatch: c.ETag})
		return err
	})
	if err != nil {
		a.writeError(w, r, about("certificate", name, err))
		return
	}
	a.audit(r, "verify", "certificate", c.Name)
	a.writeJSON(w, http.StatusOK, c.Redacted())
}

// checkProof applies the proof-of-possession rules; every refusal is a
// 400 that says what to fix, and changes nothing.
func (a *API) checkProof(c *enrollment.CACertificate, proof *x509.Certificate) error {
	now := a.now()
	switch {
	case c.VerificationCode == "" || c.VerificationCodeExpiry == nil:
		return fmt.Errorf("%w: certificate %q has no outstanding verification code (request one with POST .../verificationCode; a code is used up by a successful verification)", errBadRequest, c.Name)
	case now.After(*c.VerificationCodeExpiry):
		return fmt.Errorf("%w: the verification code of certificate %q expired at %s; request a new one", errBadRequest, c.Name, c.VerificationCodeExpiry.UTC().Format(time.RFC3339))
	case subtle.ConstantTimeCompare([]byte(proof.Subject.CommonName), []byte(c.VerificationCode)) != 1:
		return fmt.Errorf("%w: the subject CN of the verification certificate must be the current verification code", errBadRequest)
	case now.Before(proof.NotBefore) || now.After(proof.NotAfter):
		return fmt.Errorf("%w: the verification certificate is not currently valid (valid %s to %s)", errBadRequest,
			proof.NotBefore.UTC().Format(time.RFC3339), proof.NotAfter.UTC().Format(time.RFC3339))
	}
	ca, err := c.Parsed()
	if err != nil {
		return fmt.Errorf("stored CA certificate %q: %w", c.Name, err)
	}
	if err := proof.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("%w: the verification certificate is not signed by the key of CA certificate %q", errBadRequest, c.Name)
	}
	return nil
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

// checkCAReferences refuses an enrollment whose caReferences name a CA
// certificate that is not registered, as DPS does, with a 400 naming the
// reference. An unverified CA may be referenced (verify it later); devices
// are refused until it is verified. The check reads outside the write's
// transaction: a CA deleted meanwhile leaves a dangling reference, which
// registration refuses like an unknown one.
func (a *API) checkCAReferences(ctx context.Context, att *enrollment.AttestationMechanism) error {
	if att == nil || att.Type != enrollment.AttestationX509 || att.X509 == nil || att.X509.CAReferences == nil {
		return nil
	}
	refs := att.X509.CAReferences
	for _, f := range []struct{ field, name string }{{"primary", refs.Primary}, {"secondary", refs.Secondary}} {
		if f.name == "" {
			continue
		}
		field := "attestation.x509.caReferences." + f.field
		if err := enrollment.ValidateCACertificateName(f.name); err != nil {
			return &enrollment.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not a valid certificate name", f.name)}
		}
		_, err := a.store.CACertificates.Get(ctx, f.name)
		switch {
		case isNotFound(err):
			return &enrollment.ValidationError{Field: field, Reason: fmt.Sprintf("CA certificate %q is not registered (add it with PUT /certificates/%s and verify it)", f.name, f.name)}
		case err != nil:
			return err
		}
	}
	return nil
}
