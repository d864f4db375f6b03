package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/zdps/zdps/pkg/dps"
)

// maxRawAnswer bounds the CA bundle and CRL the client reads. A CRL of a
// million revoked devices is about 40 MiB; anything larger is not zdps.
const maxRawAnswer = 64 << 20

// CACertificateInfo describes one certificate of the embedded CA.
type CACertificateInfo = dps.CACertificateInfo

// CAInfo is the embedded CA: the root and the issuing intermediate.
type CAInfo = dps.CAInfo

// GetCA describes the instance's embedded CA (GET /ca, ServiceConfig).
func (c *Client) GetCA(ctx context.Context) (*CAInfo, error) {
	return call[CAInfo](ctx, c, request{method: http.MethodGet, path: "/ca"})
}

// CABundle returns the intermediate then the root, PEM-encoded (GET
// /ca/bundle, ServiceConfig): the trust anchors of issued certificates.
func (c *Client) CABundle(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/ca/bundle", false)
}

// CRL returns the current DER CRL (GET /crl, no authentication). The
// caller checks its signature against the intermediate of CABundle.
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/crl", true)
}

// raw GETs a route that answers something other than JSON.
func (c *Client) raw(ctx context.Context, path string, noAuth bool) ([]byte, error) {
	resp, err := c.rawGet(ctx, path, "", noAuth)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRawAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: reading answer: %w: %w", path, errTruncated, err)
	}
	if len(b) > maxRawAnswer {
		return nil, fmt.Errorf("client: GET %s: answer larger than %d bytes", path, maxRawAnswer)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("client: GET %s: empty answer", path)
	}
	return b, nil
}

// rawGet sends GET path, with accept as its Accept when set and
// authenticated unless noAuth, and returns a 2xx or 3xx answer for the
// caller to read and close; an error answer is an *APIError.
func (c *Client) rawGet(ctx context.Context, path, accept string, noAuth bool) (*http.Response, error) {
	u := c.base + path + "?api-version=" + url.QueryEscape(c.apiVersion)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", path, err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if !noAuth {
		auth, err := c.authorization(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &transportError{method: http.MethodGet, url: c.cs.HostName + path, err: err}
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeAPIError(resp)
	}
	return resp, nil
}
