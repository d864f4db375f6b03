package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/dps"
)

// ErrUpstream: central answered with an error (its DPS error body in the
// message).
var ErrUpstream = errors.New("gateway: central refused")

// ErrUnreachable: central could not be reached (the link is down).
var ErrUnreachable = errors.New("gateway: central unreachable")

// UpstreamError is an error answer of central; it matches ErrUpstream.
type UpstreamError struct {
	Op      string
	Status  int
	Code    int
	Message string
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("%v: %s: %d %d %s", ErrUpstream, e.Op, e.Status, e.Code, e.Message)
}

func (e *UpstreamError) Is(target error) bool { return target == ErrUpstream }

// maxAnswer bounds an answer of central read into memory.
const maxAnswer = 32 << 20

// Client is the gateway API of one central zdps.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient speaks to central at base (https://host:port) trusting roots,
// presenting the certificate cert returns at each handshake (so a renewed
// client certificate is used at once).
func NewClient(base string, roots *x509.CertPool, cert func() (*tls.Certificate, error)) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("gateway: upstream %q: want https://host[:port]", base)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return cert()
			},
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// CloseIdle closes idle connections (after a client certificate renewal).
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, path, err)
	}
	if resp.StatusCode >= 300 {
		ue := &UpstreamError{Op: method + " " + path, Status: resp.StatusCode}
		var e dps.ErrorBody
		if json.Unmarshal(b, &e) == nil {
			ue.Code, ue.Message = e.ErrorCode, e.Message
		}
		return ue
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %s %s: answer: %w", ErrUpstream, method, path, err)
	}
	return nil
}

// DelegatedCA asks central to sign the gateway's CA key (DER PKCS#10) and
// returns the chain: the delegated CA, central's intermediate(s), its root.
func (c *Client) DelegatedCA(ctx context.Context, csrDER []byte) ([]*x509.Certificate, error) {
	var res dps.GatewayCAResponse
	if err := c.do(ctx, http.MethodPost, dps.GatewayPrefix+"/ca", dps.GatewayCARequest{CSR: base64.StdEncoding.EncodeToString(csrDER)}, &res); err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for i, s := range res.CertificateChain {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: certificateChain[%d]: %w", ErrUpstream, i, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificateChain[%d]: %w", ErrUpstream, i, err)
		}
		chain = append(chain, cert)
	}
	return chain, nil
}

// Changes reads one page of the site's feed after cursor ("" from the
// beginning).
func (c *Client) Changes(ctx context.Context, cursor string, limit int) (*dps.ChangesPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p dps.ChangesPage
	if err := c.do(ctx, http.MethodGet, dps.GatewayPrefix+"/changes?"+q.Encode(), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// PushRecords pushes records; central answers one result each, in order.
func (c *Client) PushRecords(ctx context.Context, recs []dps.GatewayRecord) ([]dps.GatewayRecordResult, error) {
	var res dps.GatewayRecordResults
	if err := c.do(ctx, http.MethodPost, dps.GatewayPrefix+"/records", dps.GatewayRecords{Records: recs}, &res); err != nil {
		return nil, err
	}
	if len(res.Results) != len(recs) {
		return nil, fmt.Errorf("%w: %d results for %d records", ErrUpstream, len(res.Results), len(recs))
	}
	return res.Results, nil
}

// PushAudit pushes audit events (each with its ID).
func (c *Client) PushAudit(ctx context.Context, evs []dps.AuditEvent) (*dps.GatewayAuditResult, error) {
	var res dps.GatewayAuditResult
	if err := c.do(ctx, http.MethodPost, dps.GatewayPrefix+"/audit", dps.GatewayAudit{Events: evs}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Status reports the gateway's state.
func (c *Client) Status(ctx context.Context, s dps.GatewayStatus) error {
	return c.do(ctx, http.MethodPost, dps.GatewayPrefix+"/status", s, nil)
}
