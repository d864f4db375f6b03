package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zdps/zdps/pkg/sas"
)

// DefaultAPIVersion is the api-version the client sends; it is the one the
// Azure service SDKs send.
const DefaultAPIVersion = "2021-10-01"

// DefaultTokenTTL is the lifetime of the SAS tokens the client signs.
const DefaultTokenTTL = time.Hour

// maxErrorBody bounds how much of an error answer is read: a misbehaving
// proxy must not make the client buffer a huge page.
const maxErrorBody = 64 << 10

// Config configures a Client.
type Config struct {
	// ConnectionString is the Azure-format service connection string.
	ConnectionString string
	// RootCAs verifies the server's certificate; nil means the system
	// roots. Ignored when HTTPClient is set.
	RootCAs *x509.CertPool
	// HTTPClient, when set, is used as is (its transport decides TLS).
	HTTPClient *http.Client
	// TokenTTL is the lifetime of signed tokens; 0 means DefaultTokenTTL.
	TokenTTL time.Duration
	// APIVersion is sent as ?api-version=; "" means DefaultAPIVersion.
	APIVersion string
	// Now is the clock used for token expiry; nil means time.Now.
	Now func() time.Time
	// UserAgent is sent as User-Agent; "" means "zdps-client".
	UserAgent string
	// BearerToken, when set, authenticates every call with
	// "Authorization: Bearer <token>" (an OIDC access token the server
	// checks against its issuer) instead of a SAS signed with the
	// connection string's key. It is called before every request and
	// returns a current token, refreshing it as needed. HostName is then
	// required and ConnectionString is not used.
	BearerToken func(ctx context.Context) (string, error)
	// HostName is host[:port] of the server, with BearerToken.
	HostName string
}

// Client calls the zdps service API. It is safe for concurrent use.
type Client struct {
	cs         ConnectionString
	key        []byte
	base       string
	http       *http.Client
	ttl        time.Duration
	apiVersion string
	now        func() time.Time
	userAgent  string
	bearer     func(ctx context.Context) (string, error)

	mu          sync.Mutex
	token       string
	tokenExpiry time.Time
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	var cs ConnectionString
	var key []byte
	if cfg.BearerToken != nil {
		if cfg.HostName == "" || strings.ContainsAny(cfg.HostName, "/ ") {
			return nil, fmt.Errorf("client: a bearer token needs the server's HostName (host[:port]), not %q", cfg.HostName)
		}
		cs.HostName = cfg.HostName
	} else {
		var err error
		if cs, err = ParseConnectionString(cfg.ConnectionString); err != nil {
			return nil, err
		}
		if key, err = cs.Key(); err != nil {
			return nil, err
		}
	}
	if cfg.TokenTTL < 0 {
		return nil, fmt.Errorf("client: negative TokenTTL %s", cfg.TokenTTL)
	}
	if cfg.TokenTTL > 0 && cfg.TokenTTL < time.Minute {
		// The token is renewed a fraction of its life before expiry; a
		// TTL this short would make clock skew fail requests.
		return nil, fmt.Errorf("client: TokenTTL %s is shorter than a minute", cfg.TokenTTL)
	}
	c := &Client{
		cs:         cs,
		key:        key,
		base:       "https://" + cs.HostName,
		http:       cfg.HTTPClient,
		ttl:        cfg.TokenTTL,
		apiVersion: cfg.APIVersion,
		now:        cfg.Now,
		userAgent:  cfg.UserAgent,
		bearer:     cfg.BearerToken,
	}
	if c.ttl == 0 {
		c.ttl = DefaultTokenTTL
	}
	if c.apiVersion == "" {
		c.apiVersion = DefaultAPIVersion
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.userAgent == "" {
		c.userAgent = "zdps-client"
	}
	if c.http == nil {
		c.http = defaultHTTPClient(cfg.RootCAs)
	}
	return c, nil
}

func defaultHTTPClient(roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	// A bulk import keeps several batches in flight; let them reuse
	// connections instead of opening one per call.
	tr.MaxIdleConnsPerHost = 32
	tr.ResponseHeaderTimeout = 5 * time.Minute
	// No overall Timeout: callers bound calls with their context.
	return &http.Client{Transport: tr}
}

// HostName is the service host (and port) the client talks to.
func (c *Client) HostName() string { return c.cs.HostName }

// ConnectionString is the parsed connection string the client was built
// from.
func (c *Client) ConnectionString() ConnectionString { return c.cs }

// authorization returns a cached token, signing a new one when the cached
// one has less than a fifth of its lifetime left. Renewing early keeps a
// request signed just before expiry from arriving expired.
func (c *Client) authorization(ctx context.Context) (string, error) {
	if c.bearer != nil {
		tok, err := c.bearer(ctx)
		if err != nil {
			return "", fmt.Errorf("client: bearer token: %w", err)
		}
		return "Bearer " + tok, nil
	}
	return c.sas(), nil
}

// sas is the SAS token of the connection string's policy, renewed when a
// fifth of its life is left.
func (c *Client) sas() string {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && now.Before(c.tokenExpiry.Add(-c.ttl/5)) {
		return c.token
	}
	exp := now.Add(c.ttl)
	c.token = sas.Build(c.key, c.cs.HostName, c.cs.SharedAccessKeyName, exp)
	c.tokenExpiry = exp
	return c.token
}

// request describes one call.
type request struct {
	method  string
	path    string // already escaped
	query   url.Values
	body    any // JSON-encoded when non-nil
	header  http.Header
	out     any // JSON-decoded from a 2xx answer when non-nil
	outHdr  *http.Header
	noAuth  bool
	wantNil bool // a 2xx answer may have no body
}

// escape percent-encodes one path segment (an ID).
func escape(id string) string { return url.PathEscape(id) }

// call runs req and decodes its answer into a new T.
func call[T any](ctx context.Context, c *Client, req request) (*T, error) {
	var out T
	req.out = &out
	if err := c.do(ctx, req); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) do(ctx context.Context, r request) error {
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("client: encode %s %s: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + r.path + "?api-version=" + url.QueryEscape(c.apiVersion)
	if len(r.query) > 0 {
		u += "&" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", r.method, r.path, err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if !r.noAuth {
		auth, err := c.authorization(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &transportError{method: r.method, url: c.cs.HostName + r.path, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return decodeAPIError(resp)
	}
	if r.outHdr != nil {
		*r.outHdr = resp.Header
	}
	if r.out == nil {
		// Drain so the connection can be reused.
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("client: %s %s: reading answer: %w: %w", r.method, r.path, errTruncated, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if r.wantNil {
			return nil
		}
		return fmt.Errorf("client: %s %s: empty answer", r.method, r.path)
	}
	if err := json.Unmarshal(b, r.out); err != nil {
		return fmt.Errorf("client: %s %s: decoding answer: %w", r.method, r.path, err)
	}
	return nil
}

// transportError is a call that got no answer. It keeps the *url.Error in
// the chain (IsTransient relies on it) but says "POST host/path: cause"
// once, instead of url.Error's repetition of method, URL and api-version.
type transportError struct {
	method, url string
	err         error
}

func (e *transportError) Error() string {
	cause := e.err
	if u, ok := e.err.(*url.Error); ok {
		cause = u.Err
	}
	return e.method + " " + e.url + ": " + cause.Error()
}

func (e *transportError) Unwrap() error { return e.err }

// errTruncated marks an answer whose body broke off: the connection died,
// so the call may be retried.
var errTruncated = errors.New("answer truncated")

// wireError is the DPS error body.
type wireError struct {
	ErrorCode  int    `json:"errorCode"`
	TrackingID string `json:"trackingId"`
	Message    string `json:"message"`
}

func decodeAPIError(resp *http.Response) error {
	e := &APIError{StatusCode: resp.StatusCode}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var w wireError
	if json.Unmarshal(b, &w) == nil {
		e.ErrorCode, e.TrackingID, e.Message = w.ErrorCode, w.TrackingID, oneLine(w.Message)
	}
	if e.Message == "" {
		// Not the DPS format (a proxy page, plain text): the status text
		// says more than a raw page would.
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	if e.TrackingID == "" {
		e.TrackingID = resp.Header.Get("x-ms-request-id")
	}
	return e
}

// oneLine keeps messages printable on one line and bounded.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

func isTLSVerification(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*net.AddrError](err); ok {
		return true
	}
	return false
}

// Health calls GET /healthz (no auth needed).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/healthz", noAuth: true})
}

// ifMatch builds the If-Match header; "" sends none.
func ifMatch(etag string) http.Header {
	if etag == "" {
		return nil
	}
	return http.Header{"If-Match": {etag}}
}

// pageHeader builds the query paging headers.
func pageHeader(pageSize int, continuation string) http.Header {
	h := http.Header{}
	if pageSize > 0 {
		h.Set("x-ms-max-item-count", strconv.Itoa(pageSize))
	}
	if continuation != "" {
		h.Set("x-ms-continuation", continuation)
	}
	return h
}

// queryBody is the only query DPS defines that zdps answers.
var queryBody = map[string]string{"query": "*"}

// page runs one paged call and returns the next continuation ("" when this
// was the last page).
func page[T any](ctx context.Context, c *Client, method, path string, body any, pageSize int, continuation string) ([]T, string, error) {
	var out []T
	var hdr http.Header
	err := c.do(ctx, request{method: method, path: path, body: body, header: pageHeader(pageSize, continuation), out: &out, outHdr: &hdr, wantNil: true})
	if err != nil {
		return nil, "", err
	}
	return out, hdr.Get("x-ms-continuation"), nil
}

// each pages through a paged call, yielding items one at a time so that a
// caller printing a million enrollments holds one page in memory.
func each[T any](ctx context.Context, pageSize int, fetch func(ctx context.Context, pageSize int, continuation string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		cont := ""
		for {
			items, next, err := fetch(ctx, pageSize, cont)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == cont {
				// A server that hands back the same token would loop forever.
				yield(zero, fmt.Errorf("client: server repeated continuation token %q", next))
				return
			}
			cont = next
		}
	}
}
