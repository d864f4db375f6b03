package custom

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/zdps/zdps/pkg/webhooksig"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Defaults of Config.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultRetries          = 2
	DefaultRetryBackoff     = 200 * time.Millisecond
	DefaultMaxResponseBytes = 1 << 20
	// MaxRetries bounds Config.Retries.
	MaxRetries = 10
)

// Header names of the request signature.
const (
	HeaderTimestamp = webhooksig.HeaderTimestamp
	HeaderSignature = webhooksig.HeaderSignature
)

// Config configures the policy.
type Config struct {
	// Timeout of one attempt (connect to last byte); DefaultTimeout when 0.
	Timeout time.Duration
	// Retries after the first attempt; DefaultRetries when 0, none when
	// negative, at most MaxRetries.
	Retries int
	// RetryBackoff before the first retry, doubled for each further one;
	// DefaultRetryBackoff when 0.
	RetryBackoff time.Duration
	// Secret, when set, signs every request (HeaderSignature).
	Secret []byte
	// AllowNetworks are exempt from the refused address ranges.
	AllowNetworks []netip.Prefix
	// MaxResponseBytes bounds the answer; DefaultMaxResponseBytes when 0.
	MaxResponseBytes int64
	// Logger; nothing is logged when nil.
	Logger *slog.Logger
	// Now is the clock (signature timestamps); time.Now when nil.
	Now func() time.Time
	// OnCall, when set, is told of every webhook attempt: how long it took
	// and whether it failed (metrics).
	OnCall func(d time.Duration, err error)
}

// Policy is the custom policy; safe for concurrent use.
type Policy struct {
	cfg     Config
	client  *http.Client
	log     *slog.Logger
	refused []netip.Prefix
}

var _ allocation.Policy = (*Policy)(nil)

// refused are the address ranges a webhook may not be reached at unless
// allowed explicitly.
var refused = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),     // IPv4 link-local, incl. 169.254.169.254 metadata
	netip.MustParsePrefix("fe80::/10"),          // IPv6 link-local
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IMDS over IPv6
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure wire server
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("::/128"),             // unspecified
	netip.MustParsePrefix("224.0.0.0/4"),        // IPv4 multicast
	netip.MustParsePrefix("ff00::/8"),           // IPv6 multicast
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// ErrRefusedAddress is the dial error for a refused address.
var ErrRefusedAddress = errors.New("custom: webhook address refused")

// New validates cfg and builds the policy.
func New(cfg Config) (*Policy, error) {
	switch {
	case cfg.Timeout < 0 || cfg.RetryBackoff < 0 || cfg.MaxResponseBytes < 0:
		return nil, errors.New("custom: durations and sizes must not be negative")
	case cfg.Retries > MaxRetries:
		return nil, fmt.Errorf("custom: at most %d retries, not %d", MaxRetries, cfg.Retries)
	}
	for _, p := range cfg.AllowNetworks {
		if !p.IsValid() {
			return nil, fmt.Errorf("custom: invalid allowed network %v", p)
		}
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	cfg.RetryBackoff = cmp.Or(cfg.RetryBackoff, DefaultRetryBackoff)
	cfg.MaxResponseBytes = cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Policy{cfg: cfg, log: log, refused: refused}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: p.control}
	p.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, past the address check
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   cfg.Timeout,
			ResponseHeaderTimeout: cfg.Timeout,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

// control refuses, at connect time, an address in a refused range.
func (p *Policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrRefusedAddress, address)
	}
	return p.checkAddr(ap.Addr())
}

func (p *Policy) checkAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	for _, allow := range p.cfg.AllowNetworks {
		if allow.Contains(a) {
			return nil
		}
	}
	for _, r := range p.refused {
		if r.Contains(a) {
			return &refusedError{addr: a}
		}
	}
	return nil
}

// metadataHosts are cloud metadata services' host names; a literal one in
// a webhook URL is refused like their addresses.
var metadataHosts = []string{"metadata.google.internal", "metadata.goog", "metadata.azure.internal", "instance-data.ec2.internal"}

// CheckURL is the write-time check of a webhook URL: it refuses a URL whose
// host is a literal address in a refused range (unless allowed) or a cloud
// metadata host name, so the operator learns of it when the enrollment is
// written rather than at a device's registration. A host name is not
// resolved here (DNS may change, or not answer from where the API runs):
// the connect-time check stays the authority.
func (p *Policy) CheckURL(raw string) error {
	if err := enrollment.ValidateWebhookURL(raw); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		if err := p.checkAddr(a); err != nil {
			return fmt.Errorf("%w; allow it explicitly with --allocation-webhook-allow-cidr", err)
		}
		return nil
	}
	if slices.Contains(metadataHosts, host) {
		return fmt.Errorf("host %s is a cloud metadata service", host)
	}
	return nil
}

type refusedError struct{ addr netip.Addr }

func (e *refusedError) Error() string {
	return fmt.Sprintf("address %s is refused (link-local or cloud metadata)", e.addr)
}
func (e *refusedError) Unwrap() error { return ErrRefusedAddress }

// Kinds of webhook failure (WebhookError.Kind).
const (
	KindNoWebhook = "noWebhook"
	KindTimeout   = "timeout"
	KindStatus    = "status"
	KindMalformed = "malformed"
	KindNoHub     = "noHub"
	KindNotLinked = "notLinked"
	KindBlocked   = "blocked"
	KindTransport = "transport"
)

// WebhookError is a failed custom allocation. Its message says what the
// webhook did wrong; it is the registration's errorMessage.
type WebhookError struct {
	Kind       string
	Attempts   int
	StatusCode int           // KindStatus
	Timeout    time.Duration // KindTimeout
	Hub        string        // KindNotLinked
	Linked     []string      // KindNotLinked
	Detail     string        // KindMalformed, KindBlocked, KindTransport
}

func (e *WebhookError) Error() string {
	const w = "custom allocation webhook"
	switch e.Kind {
	case KindNoWebhook:
		return "custom allocation needs customAllocationDefinition.webhookUrl on the enrollment"
	case KindTimeout:
		return fmt.Sprintf("%s did not answer within %v (%d attempts)", w, e.Timeout, e.Attempts)
	case KindStatus:
		return fmt.Sprintf("%s answered HTTP %d (%d attempts)", w, e.StatusCode, e.Attempts)
	case KindMalformed:
		return fmt.Sprintf("%s answered malformed JSON: %s", w, e.Detail)
	case KindNoHub:
		return w + " answer has no iotHubHostName"
	case KindNotLinked:
		linked := e.Linked
		more := ""
		if len(linked) > 10 {
			linked, more = linked[:10], fmt.Sprintf(" and %d more", len(e.Linked)-10)
		}
		return fmt.Sprintf("%s chose %q, which is not one of the linked hubs offered: %s%s", w, e.Hub, strings.Join(linked, ", "), more)
	case KindBlocked:
		return fmt.Sprintf("%s %s; allow it explicitly with --allocation-webhook-allow-cidr", w, e.Detail)
	}
	return fmt.Sprintf("%s unreachable: %s (%d attempts)", w, e.Detail, e.Attempts)
}

// Unwrap makes every WebhookError an allocation.ErrPolicyFailed.
func (e *WebhookError) Unwrap() error { return allocation.ErrPolicyFailed }

// request is the webhook request body.
type request struct {
	IndividualEnrollment *enrollment.IndividualEnrollment `json:"individualEnrollment,omitempty"`
	EnrollmentGroup      *enrollment.EnrollmentGroup      `json:"enrollmentGroup,omitempty"`
	DeviceRuntimeContext runtimeContext                   `json:"deviceRuntimeContext"`
	LinkedHubs           []string                         `json:"linkedHubs"`
}

type runtimeContext struct {
	RegistrationID        string          `json:"registrationId"`
	CurrentIoTHubHostName string          `json:"currentIotHubHostName,omitempty"`
	CurrentDeviceID       string          `json:"currentDeviceId,omitempty"`
	X509                  *struct{}       `json:"x509,omitempty"`
	SymmetricKey          *struct{}       `json:"symmetricKey,omitempty"`
	TPM                   *struct{}       `json:"tpm,omitempty"`
	Payload               json.RawMessage `json:"payload,omitempty"`
}

// response is the webhook answer.
type response struct {
	IoTHubHostName *string         `json:"iotHubHostName"`
	InitialTwin    json.RawMessage `json:"initialTwin"`
	Payload        json.RawMessage `json:"payload"`
}

// Body builds the request body for in.
func Body(in allocation.Input) ([]byte, error) {
	req := request{
		DeviceRuntimeContext: runtimeContext{
			RegistrationID:        in.RegistrationID,
			CurrentIoTHubHostName: in.CurrentHub,
			CurrentDeviceID:       in.CurrentDeviceID,
		},
		LinkedHubs: []string{},
	}
	if len(bytes.TrimSpace(in.Payload)) > 0 && json.Valid(in.Payload) {
		req.DeviceRuntimeContext.Payload = in.Payload
	}
	switch in.AttestationType {
	case enrollment.AttestationX509:
		req.DeviceRuntimeContext.X509 = &struct{}{}
	case enrollment.AttestationTPM:
		req.DeviceRuntimeContext.TPM = &struct{}{}
	case enrollment.AttestationSymmetricKey:
		req.DeviceRuntimeContext.SymmetricKey = &struct{}{}
	}
	switch {
	case in.Enrollment != nil:
		req.IndividualEnrollment = in.Enrollment.Redacted()
		req.IndividualEnrollment.RegistrationState = nil
	case in.Group != nil:
		req.EnrollmentGroup = in.Group.Redacted()
	}
	for _, h := range in.EligibleHubs {
		if h != nil && h.Name != "" {
			req.LinkedHubs = append(req.LinkedHubs, h.Name)
		}
	}
	return json.Marshal(req)
}

func webhookURL(in allocation.Input) string {
	if s := in.Spec(); s != nil && s.CustomAllocationDefinition != nil {
		return s.CustomAllocationDefinition.WebhookURL
	}
	return ""
}

// Sign is the X-Zdps-Signature value for body sent at ts (unix seconds)
// (pkg/webhooksig, which the audit export's webhook shares).
func Sign(secret []byte, ts int64, body []byte) string { return webhooksig.Sign(secret, ts, body) }

// ErrBadSignature is Verify's refusal.
var ErrBadSignature = webhooksig.ErrBadSignature

// Verify checks a request's signature headers against body, for webhooks
// written in Go (pkg/webhooksig).
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	return webhooksig.Verify(secret, h, body, now, tolerance)
}

// Allocate calls the enrollment's webhook and validates its answer.
func (p *Policy) Allocate(ctx context.Context, in allocation.Input) (allocation.Decision, error) {
	url := webhookURL(in)
	if url == "" {
		return allocation.Decision{}, &WebhookError{Kind: KindNoWebhook}
	}
	if err := enrollment.ValidateWebhookURL(url); err != nil {
		return allocation.Decision{}, &WebhookError{Kind: KindTransport, Detail: "invalid webhook URL"}
	}
	body, err := Body(in)
	if err != nil {
		return allocation.Decision{}, fmt.Errorf("custom: encode request: %w", err)
	}
	var (
		attempts int
		last     *WebhookError
		raw      []byte
	)
	backoff := p.cfg.RetryBackoff
	for attempts < p.cfg.Retries+1 {
		if attempts > 0 {
			select {
			case <-ctx.Done():
				return allocation.Decision{}, ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		attempts++
		var retry bool
		start := time.Now()
		raw, last, retry, err = p.attempt(ctx, url, body)
		if p.cfg.OnCall != nil {
			var failed error
			if last != nil {
				failed = last
			}
			p.cfg.OnCall(time.Since(start), failed)
		}
		if err != nil {
			return allocation.Decision{}, err // the caller's context ended
		}
		if last == nil || !retry {
			break
		}
		p.log.WarnContext(ctx, "custom allocation webhook attempt failed", "registration_id", in.RegistrationID, "attempt", attempts, "error", last.Error())
	}
	if last != nil {
		last.Attempts = attempts
		return allocation.Decision{}, last
	}
	return decide(raw, in, attempts)
}

// attempt makes one call. It returns the 2xx body, or the failure and
// whether it may be retried; err only when ctx itself ended.
func (p *Policy) attempt(ctx context.Context, url string, body []byte) ([]byte, *WebhookError, bool, error) {
	actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &WebhookError{Kind: KindTransport, Detail: "invalid webhook URL"}, false, nil
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "zdps-allocation/1")
	if len(p.cfg.Secret) > 0 {
		ts := p.cfg.Now().Unix()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(p.cfg.Secret, ts, body))
	}
	resp, err := p.client.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxResponseBytes+1))
		if err == nil {
			switch {
			case resp.StatusCode < 200 || resp.StatusCode > 299:
				retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
				return nil, &WebhookError{Kind: KindStatus, StatusCode: resp.StatusCode}, retry, nil
			case int64(len(b)) > p.cfg.MaxResponseBytes:
				return nil, &WebhookError{Kind: KindMalformed, Detail: fmt.Sprintf("the answer exceeds %d bytes", p.cfg.MaxResponseBytes)}, false, nil
			}
			return b, nil, false, nil
		}
	}
	if ctx.Err() != nil {
		return nil, nil, false, ctx.Err()
	}
	var re *refusedError
	switch {
	case errors.As(err, &re):
		return nil, &WebhookError{Kind: KindBlocked, Detail: re.Error()}, false, nil
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return nil, &WebhookError{Kind: KindTimeout, Timeout: p.cfg.Timeout}, true, nil
	}
	return nil, &WebhookError{Kind: KindTransport, Detail: transportDetail(err)}, true, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transportDetail describes a transport failure without the URL (which may
// carry a function key in its query).
func transportDetail(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		if op.Err != nil {
			return op.Op + ": " + op.Err.Error()
		}
		return op.Op
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "DNS: " + dns.Err
	}
	if strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:") {
		return "TLS handshake failed"
	}
	return "connection failed"
}

// decide validates the answer against the eligible hubs.
func decide(raw []byte, in allocation.Input, attempts int) (allocation.Decision, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return allocation.Decision{}, &WebhookError{Kind: KindMalformed, Attempts: attempts, Detail: "the answer is not a JSON object"}
	}
	var resp response
	if err := json.Unmarshal(t, &resp); err != nil {
		return allocation.Decision{}, &WebhookError{Kind: KindMalformed, Attempts: attempts, Detail: jsonDetail(err, len(t))}
	}
	if resp.IoTHubHostName == nil || *resp.IoTHubHostName == "" {
		return allocation.Decision{}, &WebhookError{Kind: KindNoHub, Attempts: attempts}
	}
	if it := bytes.TrimSpace(resp.InitialTwin); len(it) > 0 && string(it) != "null" && it[0] != '{' {
		return allocation.Decision{}, &WebhookError{Kind: KindMalformed, Attempts: attempts, Detail: "initialTwin must be a JSON object"}
	}
	var linked []string
	for _, h := range in.EligibleHubs {
		if h == nil || h.Name == "" {
			continue
		}
		linked = append(linked, h.Name)
		if enrollment.Key(h.Name) == enrollment.Key(*resp.IoTHubHostName) {
			d := allocation.Decision{Hub: h.Name, Reason: "the custom allocation webhook chose it"}
			if it := bytes.TrimSpace(resp.InitialTwin); len(it) > 0 && string(it) != "null" {
				d.InitialTwin = compact(it)
			}
			if pl := bytes.TrimSpace(resp.Payload); len(pl) > 0 && string(pl) != "null" {
				d.Payload = compact(pl)
			}
			return d, nil
		}
	}
	hub := *resp.IoTHubHostName
	if len(hub) > 256 {
		hub = hub[:256] + "..."
	}
	return allocation.Decision{}, &WebhookError{Kind: KindNotLinked, Attempts: attempts, Hub: hub, Linked: linked}
}

func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return nil
	}
	return buf.Bytes()
}

func jsonDetail(err error, n int) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn) && syn.Offset >= int64(n):
		return "the answer ends early"
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("%s must not be a JSON %s", typ.Field, typ.Value)
	}
	return "cannot decode the answer"
}
