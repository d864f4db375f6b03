package manage

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// VerificationCodeTTL is how long a proof-of-possession verification code
// is accepted after it was issued.
const VerificationCodeTTL = time.Hour

// verificationCodeBytes is the entropy of a code: 128 bits, written as 32
// upper-case hex digits (a subject CN holds 64 characters).
const verificationCodeBytes = 16

// CACertificate reads a registered CA certificate, verification code
// included: the caller redacts.
func (s *Service) CACertificate(ctx context.Context, name string) (*enrollment.CACertificate, error) {
	return s.st.CACertificates.Get(ctx, name)
}

// CACertificates reads one page of registered CA certificates.
func (s *Service) CACertificates(ctx context.Context, cont string, limit int) ([]*enrollment.CACertificate, string, error) {
	return s.st.CACertificates.List(ctx, cont, limit)
}

// PutCACertificate registers or replaces a CA certificate under cond.
// Replacing it with another certificate clears the verification (a proof
// is about one key); writing the same certificate again keeps it.
func (s *Service) PutCACertificate(ctx context.Context, c *enrollment.CACertificate, cond store.Condition) (created bool, err error) {
	err = s.st.Backend.Update(ctx, func(tx store.Tx) error {
		col := s.st.CACertificates.In(tx)
		c.IsVerified, c.VerificationCode, c.VerificationCodeExpiry = false, "", nil
		old, err := col.Get(ctx, c.Name)
		switch {
		case err == nil:
			if old.Info != nil && c.Info != nil && old.Info.SHA256Thumbprint == c.Info.SHA256Thumbprint {
				c.IsVerified, c.VerificationCode, c.VerificationCodeExpiry = old.IsVerified, old.VerificationCode, old.VerificationCodeExpiry
			}
		case !isNotFound(err):
			return err
		}
		created, err = col.Put(ctx, c, cond)
		return err
	})
	return created, preconditionOnMissing(err, cond)
}

// DeleteCACertificate removes a registered CA certificate.
func (s *Service) DeleteCACertificate(ctx context.Context, name, ifMatch string) error {
	return s.st.CACertificates.Delete(ctx, name, store.Condition{IfMatch: ifMatch})
}

// VerificationCode issues a fresh one-time proof-of-possession code for
// the CA certificate, replacing any outstanding one, and returns the
// certificate as stored with it.
func (s *Service) VerificationCode(ctx context.Context, name string) (*enrollment.CACertificate, error) {
	// Generated before the transaction, which may run more than once.
	raw := make([]byte, verificationCodeBytes)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return nil, fmt.Errorf("verification code: %w", err)
	}
	code := strings.ToUpper(hex.EncodeToString(raw))
	expiry := s.now().UTC().Add(VerificationCodeTTL).Truncate(time.Second)
	return s.changeCACertificate(ctx, name, func(c *enrollment.CACertificate) error {
		c.VerificationCode, c.VerificationCodeExpiry = code, &expiry
		return nil
	})
}

// VerifyCACertificate checks the proof of possession: a currently valid
// certificate whose subject CN is the outstanding code, signed by the
// registered CA's key. Success marks the CA verified and consumes the
// code; a refusal wraps ErrBadRequest and changes nothing.
func (s *Service) VerifyCACertificate(ctx context.Context, name string, proof *x509.Certificate) (*enrollment.CACertificate, error) {
	return s.changeCACertificate(ctx, name, func(c *enrollment.CACertificate) error {
		if err := s.checkProof(c, proof); err != nil {
			return err
		}
		c.IsVerified, c.VerificationCode, c.VerificationCodeExpiry = true, "", nil
		return nil
	})
}

// changeCACertificate applies change to the stored CA certificate name and
// writes it back, compare-and-swap on what it read, in one transaction;
// an error of change writes nothing.
func (s *Service) changeCACertificate(ctx context.Context, name string, change func(*enrollment.CACertificate) error) (*enrollment.CACertificate, error) {
	var c *enrollment.CACertificate
	err := s.st.Backend.Update(ctx, func(tx store.Tx) error {
		col := s.st.CACertificates.In(tx)
		var err error
		if c, err = col.Get(ctx, name); err != nil {
			return err
		}
		if err := change(c); err != nil {
			return err
		}
		_, err = col.Put(ctx, c, store.Condition{IfMatch: c.ETag})
		return err
	})
	return c, err
}

// checkProof applies the proof-of-possession rules; every refusal is a
// 400 that says what to fix, and changes nothing.
func (s *Service) checkProof(c *enrollment.CACertificate, proof *x509.Certificate) error {
	now := s.now()
	switch {
	case c.VerificationCode == "" || c.VerificationCodeExpiry == nil:
		return fmt.Errorf("%w: certificate %q has no outstanding verification code (request one with POST .../verificationCode; a code is used up by a successful verification)", ErrBadRequest, c.Name)
	case now.After(*c.VerificationCodeExpiry):
		return fmt.Errorf("%w: the verification code of certificate %q expired at %s; request a new one", ErrBadRequest, c.Name, c.VerificationCodeExpiry.UTC().Format(time.RFC3339))
	case subtle.ConstantTimeCompare([]byte(proof.Subject.CommonName), []byte(c.VerificationCode)) != 1:
		return fmt.Errorf("%w: the subject CN of the verification certificate must be the current verification code", ErrBadRequest)
	case now.Before(proof.NotBefore) || now.After(proof.NotAfter):
		return fmt.Errorf("%w: the verification certificate is not currently valid (valid %s to %s)", ErrBadRequest,
			proof.NotBefore.UTC().Format(time.RFC3339), proof.NotAfter.UTC().Format(time.RFC3339))
	}
	ca, err := c.Parsed()
	if err != nil {
		return fmt.Errorf("stored CA certificate %q: %w", c.Name, err)
	}
	if err := proof.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("%w: the verification certificate is not signed by the key of CA certificate %q", ErrBadRequest, c.Name)
	}
	return nil
}
