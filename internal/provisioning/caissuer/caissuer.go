// Package caissuer adapts the embedded CA (internal/ca) to provisioning.Issuer.
//
// Security contract: it maps the CA's refusals of device input (malformed
// CSR, bad signature, weak or unsupported key, common name other than the
// registration ID) to provisioning.ErrInvalid, keeping the CA's sentinel in
// the chain; every other CA error stays a server fault. It logs nothing.
package caissuer

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/provisioning"
)

// Signer is the part of *ca.CA the adapter uses.
type Signer interface {
	SignCSR(csrDER []byte, p ca.LeafPolicy) (*ca.Issued, error)
}

// Issuer issues operational certificates from a CA.
type Issuer struct{ ca Signer }

// New wraps c.
func New(c Signer) (*Issuer, error) {
	if c == nil {
		return nil, errors.New("caissuer: CA is required")
	}
	return &Issuer{ca: c}, nil
}

var _ provisioning.Issuer = (*Issuer)(nil)

// Issue signs the CSR by policy.
func (i *Issuer) Issue(ctx context.Context, csrDER []byte, p provisioning.LeafPolicy) (*provisioning.Issued, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := i.ca.SignCSR(csrDER, ca.LeafPolicy{RegistrationID: p.RegistrationID, DeviceID: p.DeviceID, Validity: p.Validity})
	switch {
	case errors.Is(err, ca.ErrCSRMalformed):
		return nil, provisioning.Refuse("CSR malformed", fmt.Errorf("%w: csr: %w", provisioning.ErrInvalid, err))
	case errors.Is(err, ca.ErrCSRSignature):
		return nil, provisioning.Refuse("CSR signature invalid", fmt.Errorf("%w: csr: %w", provisioning.ErrInvalid, err))
	case errors.Is(err, ca.ErrCSRKey):
		return nil, provisioning.Refuse("CSR key type or size not accepted", fmt.Errorf("%w: csr: %w", provisioning.ErrInvalid, err))
	case errors.Is(err, ca.ErrCSRSubject):
		return nil, provisioning.Refuse("CSR CN does not match registrationId", fmt.Errorf("%w: csr: %w", provisioning.ErrInvalid, err))
	case errors.Is(err, ca.ErrCAExpired):
		// No fault of the device: 503, retried until the CA is renewed.
		return nil, fmt.Errorf("%w: %w", provisioning.ErrUnavailable, err)
	case err != nil:
		return nil, err
	}
	return &provisioning.Issued{
		Serial:    out.Serial,
		NotBefore: out.Certificate.NotBefore,
		NotAfter:  out.Certificate.NotAfter,
		Chain:     out.Chain,
	}, nil
}
