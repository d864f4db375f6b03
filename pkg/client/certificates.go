package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// VerificationCode is a one-time proof-of-possession code of a CA
// certificate: sign a certificate whose subject CN is Code with the CA's
// key and pass it to VerifyCertificate before Expiry.
type VerificationCode struct {
	Name   string    `json:"name"`
	Code   string    `json:"verificationCode"`
	Expiry time.Time `json:"verificationCodeExpiryUtc"`
	ETag   string    `json:"etag,omitempty"`
}

// ListCertificates returns one page of registered CA certificates and the
// next continuation.
func (c *Client) ListCertificates(ctx context.Context, pageSize int, continuation string) ([]*enrollment.CACertificate, string, error) {
	return page[*enrollment.CACertificate](ctx, c, http.MethodGet, "/certificates", nil, pageSize, continuation)
}

// Certificates iterates over every registered CA certificate.
func (c *Client) Certificates(ctx context.Context, pageSize int) iter.Seq2[*enrollment.CACertificate, error] {
	return each(ctx, pageSize, c.ListCertificates)
}

// GetCertificate returns the registered CA certificate name.
func (c *Client) GetCertificate(ctx context.Context, name string) (*enrollment.CACertificate, error) {
	return call[enrollment.CACertificate](ctx, c, request{method: http.MethodGet, path: "/certificates/" + escape(name)})
}

// PutCertificate registers (or replaces) the CA certificate name, given as
// PEM or base64 DER, conditionally on ifMatchETag when set. A new
// certificate starts unverified.
func (c *Client) PutCertificate(ctx context.Context, name, certificate, ifMatchETag string) (*enrollment.CACertificate, error) {
	if name == "" {
		return nil, fmt.Errorf("client: certificate without name")
	}
	body := map[string]string{"name": name, "certificate": certificate}
	return call[enrollment.CACertificate](ctx, c, request{method: http.MethodPut, path: "/certificates/" + escape(name), body: body, header: ifMatch(ifMatchETag)})
}

// DeleteCertificate removes the CA certificate name, conditionally on
// ifMatchETag when set.
func (c *Client) DeleteCertificate(ctx context.Context, name, ifMatchETag string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/certificates/" + escape(name), header: ifMatch(ifMatchETag)})
}

// CertificateVerificationCode issues a fresh verification code for the CA
// certificate name, replacing any outstanding one.
func (c *Client) CertificateVerificationCode(ctx context.Context, name string) (*VerificationCode, error) {
	return call[VerificationCode](ctx, c, request{method: http.MethodPost, path: "/certificates/" + escape(name) + "/verificationCode"})
}

// VerifyCertificate presents the proof of possession for the CA
// certificate name: a certificate (PEM or base64 DER) whose subject CN is
// the current verification code, signed by the CA's key.
func (c *Client) VerifyCertificate(ctx context.Context, name, certificate string) (*enrollment.CACertificate, error) {
	body := map[string]string{"certificate": certificate}
	return call[enrollment.CACertificate](ctx, c, request{method: http.MethodPost, path: "/certificates/" + escape(name) + "/verify", body: body})
}
