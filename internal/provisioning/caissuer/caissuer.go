// Package caissuer adapts the embedded CA (internal/ca) to port.Issuer.
//
// Security contract: it maps the CA's refusals of device input (malformed
// CSR, bad signature, weak or unsupported key, common name other than the
// registration ID) to port.ErrInvalid, keeping the CA's sentinel in
// the chain; every other CA error stays a server fault. It logs nothing.
package caissuer

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/provisioning/port"
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

var _ port.Issuer = (*Issuer)(nil)

// refusals are the CA's sentinels for device input, with the fixed reason
// the pipeline logs for each; errCSR is what they are refused as.
var (
	refusals = []port.Sentinel{
		{Err: ca.ErrCSRMalformed, Reason: "CSR malformed"},
		{Err: ca.ErrCSRSignature, Reason: "CSR signature invalid"},
		{Err: ca.ErrCSRKey, Reason: "CSR key type or size not accepted"},
		{Err: ca.ErrCSRSubject, Reason: "CSR CN does not match registrationId"},
	}
	errCSR = fmt.Errorf("%w: csr", port.ErrInvalid)
)

// Issue signs the CSR by policy.
func (i *Issuer) Issue(ctx context.Context, csrDER []byte, p port.LeafPolicy) (*port.Issued, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := i.ca.SignCSR(csrDER, ca.LeafPolicy{RegistrationID: p.RegistrationID, DeviceID: p.DeviceID, Validity: p.Validity})
	refusal, refused := port.RefuseAs(err, errCSR, refusals)
	switch {
	case refused:
		return nil, refusal
	case errors.Is(err, ca.ErrCAExpired):
		// No fault of the device: 503, retried until the CA is renewed.
		return nil, fmt.Errorf("%w: %w", port.ErrUnavailable, err)
	case err != nil:
		return nil, err
	}
	return &port.Issued{
		Serial:    out.Serial,
		NotBefore: out.Certificate.NotBefore,
		NotAfter:  out.Certificate.NotAfter,
		Chain:     out.Chain,
	}, nil
}
