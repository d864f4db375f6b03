package device

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpsTransport is the REST device API: one http.Client, by default one
// kept-alive connection for the whole registration.
type httpsTransport struct {
	c   *Client
	hc  *http.Client
	own *http.Transport
}

func newHTTPSTransport(c *Client, cfg Config) *httpsTransport {
	t := &httpsTransport{c: c, hc: cfg.HTTPClient}
	if t.hc == nil {
		t.own = newHTTPTransport(cfg.RootCAs, cfg.Certificate)
		t.hc = &http.Client{
			Transport: t.own,
			// DPS never redirects; a 3xx is a final answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return t
}

func (t *httpsTransport) close() {
	if t.own != nil {
		t.own.CloseIdleConnections()
	}
}

func (t *httpsTransport) do(ctx context.Context, q request) (*reply, error) {
	c := t.c
	method, path := http.MethodPut, c.path("register")
	if q.op != "" {
		method, path = http.MethodGet, c.path("operations", q.op)
	}
	var rd io.Reader
	if q.body != nil {
		rd = bytes.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.endpoint+path, rd)
	if err != nil {
		return nil, invalidConfig("build request: %v", err)
	}
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if auth := c.authorization(); auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device: %s %s: %w", method, redactQuery(path), unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("device: reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return &reply{
		code:        resp.StatusCode,
		retryAfter:  resp.Header.Get("Retry-After"),
		trackingID:  resp.Header.Get("x-ms-request-id"),
		errorCode:   resp.Header.Get("x-ms-error-code"),
		contentType: resp.Header.Get("Content-Type"),
		raw:         raw,
	}, nil
}

// path is /{idScope}/registrations/{regID}/{rest...}?api-version=V with
// every segment percent-encoded.
func (c *Client) path(rest ...string) string {
	var b strings.Builder
	b.WriteString("/" + escapeSegment(c.cfg.IDScope) + "/registrations/" + escapeSegment(c.regID))
	for _, s := range rest {
		b.WriteString("/" + escapeSegment(s))
	}
	b.WriteString("?api-version=" + url.QueryEscape(c.cfg.APIVersion))
	return b.String()
}

// escapeSegment percent-encodes everything but RFC 3986 unreserved
// characters (so ':' becomes %3A, as the C SDK sends it; url.PathEscape
// would keep it).
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}

// newHTTPTransport keeps a single connection alive across polls: the
// idle timeout exceeds the largest Retry-After, and one connection per
// host.
func newHTTPTransport(roots *x509.CertPool, cert *tls.Certificate) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = clientTLS(roots, cert)
	tr.MaxConnsPerHost = 1
	tr.MaxIdleConnsPerHost = 1
	tr.IdleConnTimeout = MaxRetryAfter + 30*time.Second
	return tr
}

// clientTLS is the TLS configuration of the client's own connections,
// HTTPS and MQTT alike.
func clientTLS(roots *x509.CertPool, cert *tls.Certificate) *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if cert != nil {
		// Certificates would be skipped when the server's list of
		// acceptable CAs does not name the issuer; the device has one
		// identity, so present it whenever asked.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return tc
}
