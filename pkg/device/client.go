package device

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// Registration statuses (docs/protocol.md#registration-states), compared case-insensitively as
// the Node SDK does.
const (
	statusAssigning = enrollment.RegistrationAssigning
	statusAssigned  = enrollment.RegistrationAssigned
	statusFailed    = enrollment.RegistrationFailed
	statusDisabled  = enrollment.RegistrationDisabled
)

// maxResponseBytes bounds what is read of an answer.
const maxResponseBytes = 1 << 20

// Client registers one device. Build it with New; it is safe for
// concurrent use, though a device normally registers once at a time.
type Client struct {
	cfg      Config
	endpoint string
	regID    string
	// key signs SAS tokens; nil with X.509.
	key []byte
	// resource is the token's sr: {idScope}/registrations/{regID},
	// URL-encoded (as the C SDK and the Node TPM path send it) and
	// signed in that form.
	resource string
	csrPub   crypto.PublicKey
	tr       carrier
	log      *slog.Logger
	// tpmToken is the TPM-signed SAS of a TPM registration, set after
	// its challenge (tpm_register.go).
	tpmToken string
}

// Register is New(cfg) followed by Register, closing the client's
// connection afterwards.
func Register(ctx context.Context, cfg Config) (*Result, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Register(ctx)
}

// New validates cfg and builds a client. Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Client, error) {
	c := &Client{}
	var err error
	if cfg.Transport, err = normalizeTransport(cfg.Transport); err != nil {
		return nil, err
	}
	if c.endpoint, err = normalizeEndpoint(cfg.Endpoint); err != nil {
		return nil, err
	}
	if cfg.Transport != TransportHTTPS {
		switch {
		case cfg.TPM != nil:
			return nil, invalidConfig("TPM attestation is offered over HTTPS only, not over Transport %q", cfg.Transport)
		case cfg.HTTPClient != nil:
			return nil, invalidConfig("HTTPClient is for HTTPS; Transport %q uses TLSConfig", cfg.Transport)
		}
	}
	if strings.TrimSpace(cfg.IDScope) == "" || strings.ContainsAny(cfg.IDScope, "/?#% \t") {
		return nil, invalidConfig("IDScope %q is not a valid ID scope", cfg.IDScope)
	}
	n := 0
	for _, set := range []bool{len(cfg.SymmetricKey) > 0, len(cfg.GroupKey) > 0, cfg.Certificate != nil, cfg.TPM != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, invalidConfig("exactly one of SymmetricKey, GroupKey, Certificate and TPM is required, %d are set", n)
	}
	if cfg.Certificate != nil {
		leaf, err := leafOf(cfg.Certificate)
		if err != nil {
			return nil, err
		}
		if cfg.RegistrationID == "" {
			cfg.RegistrationID = leaf.Subject.CommonName
		}
	}
	if cfg.TPM != nil && cfg.RegistrationID == "" {
		cfg.RegistrationID = tpmRegistrationID(cfg.TPM.EndorsementKey())
	}
	if err := enrollment.ValidateRegistrationID(cfg.RegistrationID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c.regID = cfg.RegistrationID
	switch {
	case len(cfg.SymmetricKey) > 0:
		c.key = bytes.Clone(cfg.SymmetricKey)
	case len(cfg.GroupKey) > 0:
		c.key = sas.DeriveDeviceKey(cfg.GroupKey, c.regID)
	}
	c.resource = url.QueryEscape(dps.RegistrationResource(cfg.IDScope, c.regID))
	if cfg.Payload != nil && !json.Valid(cfg.Payload) {
		return nil, invalidConfig("Payload is not valid JSON")
	}
	if len(cfg.TPMEKCertificate) > 0 {
		p, err := withEKCertificate(cfg)
		if err != nil {
			return nil, err
		}
		cfg.Payload = p
	}
	if len(cfg.CSR) > 0 && cfg.GenerateKey {
		return nil, invalidConfig("CSR and GenerateKey are mutually exclusive")
	}
	if len(cfg.CSR) > 0 {
		req, err := x509.ParseCertificateRequest(cfg.CSR)
		if err != nil {
			return nil, invalidConfig("CSR is not DER PKCS#10: %v", err)
		}
		c.csrPub = req.PublicKey
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
		if len(cfg.CSR) > 0 || cfg.GenerateKey {
			cfg.APIVersion = CSRAPIVersion
		}
	}
	if cfg.TokenTTL < 0 || cfg.RequestTimeout < 0 || cfg.MaxWait < 0 {
		return nil, invalidConfig("TokenTTL, RequestTimeout and MaxWait must not be negative")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "zdps-device-go"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	c.log = cfg.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.cfg = cfg
	if cfg.Transport == TransportHTTPS {
		c.tr = newHTTPSTransport(c, cfg)
	} else {
		c.tr = newMQTTTransport(c, cfg)
	}
	return c, nil
}

// RegistrationID is the registration ID the client registers.
func (c *Client) RegistrationID() string { return c.regID }

// Close closes the client's connection: the idle HTTPS connection of
// its own transport, or the MQTT connection (DISCONNECT).
func (c *Client) Close() { c.tr.close() }

// authorization is the SAS of the next request (the Authorization
// header, the MQTT password), empty with X.509 and before a TPM
// challenge.
func (c *Client) authorization() string {
	switch {
	case c.tpmToken != "":
		return c.tpmToken
	case c.key != nil:
		return sas.Build(c.key, c.resource, "registration", c.cfg.Now().Add(c.cfg.TokenTTL))
	}
	return ""
}

func leafOf(cert *tls.Certificate) (*x509.Certificate, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, invalidConfig("Certificate needs at least the leaf and its private key")
	}
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, invalidConfig("Certificate leaf does not parse: %v", err)
	}
	return leaf, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// operationStatus is the RegistrationOperationStatus read from the
// service; decoding is lenient (unknown fields are ignored).
type operationStatus struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"`
	RegistrationState *registrationState `json:"registrationState"`
}

type registrationState struct {
	RegistrationID         string          `json:"registrationId"`
	AssignedHub            string          `json:"assignedHub"`
	DeviceID               string          `json:"deviceId"`
	Status                 string          `json:"status"`
	Substatus              string          `json:"substatus"`
	ErrorCode              json.RawMessage `json:"errorCode"`
	ErrorMessage           string          `json:"errorMessage"`
	Payload                json.RawMessage `json:"payload"`
	IssuedCertificateChain []string        `json:"issuedCertificateChain"`
	X509                   *groupRef       `json:"x509"`
	SymmetricKey           *groupRef       `json:"symmetricKey"`
}

type groupRef struct {
	EnrollmentGroupID string `json:"enrollmentGroupId"`
}

// errorBody is the DPS error format.
type errorBody struct {
	ErrorCode  json.RawMessage `json:"errorCode"`
	TrackingID string          `json:"trackingId"`
	Message    string          `json:"message"`
}

// Register runs one registration: PUT register, then polls the operation
// while the status is "assigning", retrying 429, 5xx and network errors.
// It returns a Result when the device is assigned. Refusals and final
// statuses other than "assigned" are *Error (errors.Is with
// ErrUnauthorized, ErrNotFound, ErrBadRequest, ErrFailed, ErrDisabled);
// exhausted retries wrap ErrGaveUp and the last failure; answers outside
// the protocol wrap ErrMalformedResponse.
func (c *Client) Register(ctx context.Context) (*Result, error) {
	var priv crypto.Signer
	csr, pub := c.cfg.CSR, c.csrPub
	if c.cfg.GenerateKey {
		k, err := GenerateKey()
		if err != nil {
			return nil, err
		}
		if csr, err = GenerateCSR(c.regID, k); err != nil {
			return nil, err
		}
		priv, pub = k, k.Public()
	}
	body := dps.DeviceRegistration{RegistrationID: c.regID, Payload: c.cfg.Payload, TPM: c.tpmBody()}
	if len(csr) > 0 {
		body.CSR = base64.StdEncoding.EncodeToString(csr)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("device: encode request: %w", err)
	}
	r := &run{c: c, deadline: c.cfg.Now().Add(c.cfg.MaxWait)}
	if err := c.tpmChallenge(ctx, r, b); err != nil {
		return nil, err
	}
	ans, err := r.exchange(ctx, request{body: b})
	for err == nil {
		st := ans.op
		switch strings.ToLower(st.Status) {
		case statusAssigned:
			if err := c.tpmAssigned(ans); err != nil {
				return nil, err
			}
			return c.result(ans, priv, pub)
		case statusAssigning:
			if st.OperationID == "" {
				return nil, malformed("status %q without an operationId", st.Status)
			}
			wait := DefaultPollInterval
			if d, ok := parseRetryAfter(ans.retryAfter); ok {
				wait = d
			}
			r.last = fmt.Errorf("the registration is still assigning (operation %s)", st.OperationID)
			if err := r.wait(ctx, wait); err != nil {
				return nil, err
			}
			ans, err = r.exchange(ctx, request{op: st.OperationID})
		case statusFailed, statusDisabled:
			return nil, finalError(ans)
		default:
			return nil, malformed("unknown registration status %q (HTTP %d)", truncate(st.Status, 40), ans.code)
		}
	}
	return nil, err
}

// answer is one 2xx RegistrationOperationStatus.
type answer struct {
	code       int
	retryAfter string
	op         operationStatus
	raw        []byte
}

// run is the state of one registration: its deadline, attempt count and
// last transient failure.
type run struct {
	c        *Client
	deadline time.Time
	requests int
	last     error
}

// wait sleeps d unless that passes the deadline.
func (r *run) wait(ctx context.Context, d time.Duration) error {
	c := r.c
	if c.cfg.Now().Add(d).After(r.deadline) {
		return &gaveUpError{what: fmt.Sprintf("after %d requests: waiting %s more would pass MaxWait %s", r.requests, d, c.cfg.MaxWait), last: r.last}
	}
	c.log.DebugContext(ctx, "device: waiting", "registration_id", c.regID, "wait", d)
	if err := c.cfg.Sleep(ctx, d); err != nil {
		return fmt.Errorf("device: %w while waiting to retry (last: %s)", err, trimPrefix(r.last))
	}
	return nil
}

// exchange sends one request, retrying transient failures, and returns
// the decoded 2xx answer.
func (r *run) exchange(ctx context.Context, q request) (*answer, error) {
	c := r.c
	for attempt := 0; ; attempt++ {
		ans, retryAfter, err := r.once(ctx, q)
		if err == nil {
			return ans, nil
		}
		if retryAfter < 0 {
			return nil, err
		}
		r.last = err
		if attempt >= c.cfg.MaxRetries {
			return nil, &gaveUpError{what: fmt.Sprintf("after %d attempts", attempt+1), last: err}
		}
		wait := retryAfter
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		c.log.DebugContext(ctx, "device: transient failure, retrying", "registration_id", c.regID, "attempt", attempt+1, "error", err)
		if err := r.wait(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// backoff is the wait before retry n+1 without a Retry-After.
func (c *Client) backoff(n int) time.Duration {
	d := maxBackoff
	if n < 16 && minBackoff<<n < maxBackoff {
		d = minBackoff << n
	}
	j := c.cfg.Jitter()
	if j < 0 || j >= 1 {
		j = 0
	}
	return d/2 + time.Duration(float64(d/2)*j)
}

// once sends one request. A transient failure returns retryAfter >= 0
// (0: use the backoff); a final one returns -1.
func (r *run) once(ctx context.Context, q request) (*answer, time.Duration, error) {
	c := r.c
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	r.requests++
	rep, err := c.tr.do(rctx, q)
	if err != nil {
		var refused *Error
		switch {
		case ctx.Err() != nil:
			return nil, -1, fmt.Errorf("device: %s: %w", q, ctx.Err())
		case errors.As(err, &refused):
			// A refused MQTT CONNECT: transient as an HTTP answer with
			// its status would be.
			if refused.StatusCode == http.StatusTooManyRequests || refused.StatusCode >= 500 {
				return nil, 0, err
			}
			return nil, -1, err
		case errors.Is(err, ErrInvalidConfig), permanentTransportError(err):
			return nil, -1, err
		}
		return nil, 0, err
	}
	c.log.DebugContext(ctx, "device: answer", "registration_id", c.regID, "request", q.String(), "status", rep.code)
	if len(rep.raw) > maxResponseBytes {
		return nil, -1, malformed("answer larger than %d bytes", maxResponseBytes)
	}
	code := rep.code
	switch {
	case code >= 200 && code < 300:
		var op operationStatus
		if err := json.Unmarshal(rep.raw, &op); err != nil {
			return nil, -1, malformed("HTTP %d answer is not a RegistrationOperationStatus (Content-Type %q): %v", code, rep.contentType, err)
		}
		return &answer{code: code, retryAfter: rep.retryAfter, op: op, raw: rep.raw}, 0, nil
	case c.asTPMChallenge(code, rep.raw) != nil:
		return nil, -1, c.asTPMChallenge(code, rep.raw)
	case code == http.StatusTooManyRequests || code >= 500:
		// Clients treat every status >= 429 as transient (docs/protocol.md#status-codes-and-retries).
		d, _ := parseRetryAfter(rep.retryAfter)
		return nil, d, replyError(rep)
	}
	return nil, -1, replyError(rep)
}

// replyError builds *Error from a refusal; a body that is not the DPS
// error format leaves ErrorCode and Message to the headers and status.
func replyError(rep *reply) *Error {
	e := &Error{StatusCode: rep.code, TrackingID: rep.trackingID}
	var eb errorBody
	if json.Unmarshal(rep.raw, &eb) == nil {
		e.ErrorCode = parseCode(eb.ErrorCode)
		e.Message = eb.Message
		if eb.TrackingID != "" {
			e.TrackingID = eb.TrackingID
		}
	}
	if e.ErrorCode == 0 {
		e.ErrorCode, _ = strconv.Atoi(rep.errorCode)
	}
	return e
}

// finalError is the *Error of a "failed" or "disabled" answer.
func finalError(ans *answer) *Error {
	e := &Error{StatusCode: ans.code, Status: strings.ToLower(ans.op.Status), OperationID: ans.op.OperationID}
	if rs := ans.op.RegistrationState; rs != nil {
		e.ErrorCode = parseCode(rs.ErrorCode)
		e.Message = rs.ErrorMessage
	}
	if e.Message == "" && e.Status == statusDisabled {
		e.Message = "the enrollment is disabled"
	}
	return e
}

// parseCode reads an errorCode sent as a number or a string.
func parseCode(raw json.RawMessage) int {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, _ = strconv.Atoi(s)
	}
	return n
}

// parseRetryAfter reads Retry-After (or MQTT's retry-after) as whole
// seconds from 1 to 300; 0, a date, a missing value or more than 300 are
// not usable (ok false).
func parseRetryAfter(v string) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || time.Duration(n)*time.Second > MaxRetryAfter {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// result builds the Result of an "assigned" answer.
func (c *Client) result(ans *answer, priv crypto.Signer, pub crypto.PublicKey) (*Result, error) {
	rs := ans.op.RegistrationState
	if rs == nil {
		return nil, malformed("status assigned without a registrationState")
	}
	if rs.AssignedHub == "" || rs.DeviceID == "" {
		return nil, malformed("status assigned without assignedHub and deviceId")
	}
	res := &Result{
		RegistrationID: rs.RegistrationID,
		OperationID:    ans.op.OperationID,
		Status:         statusAssigned,
		AssignedHub:    rs.AssignedHub,
		DeviceID:       rs.DeviceID,
		Substatus:      rs.Substatus,
		Payload:        rs.Payload,
		PrivateKey:     priv,
		Raw:            json.RawMessage(ans.raw),
	}
	if res.RegistrationID == "" {
		res.RegistrationID = c.regID
	}
	switch {
	case rs.SymmetricKey != nil:
		res.EnrollmentGroupID = rs.SymmetricKey.EnrollmentGroupID
	case rs.X509 != nil:
		res.EnrollmentGroupID = rs.X509.EnrollmentGroupID
	}
	if string(res.Payload) == "null" {
		res.Payload = nil
	}
	for i, s := range rs.IssuedCertificateChain {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, malformed("issuedCertificateChain[%d] is not base64", i)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, malformed("issuedCertificateChain[%d] does not parse: %v", i, err)
		}
		res.IssuedCertificateChain = append(res.IssuedCertificateChain, cert)
	}
	if len(res.IssuedCertificateChain) > 0 && pub != nil {
		type equaler interface{ Equal(crypto.PublicKey) bool }
		if k, ok := pub.(equaler); !ok || !k.Equal(res.IssuedCertificateChain[0].PublicKey) {
			return nil, malformed("the issued leaf certificate is not for the key of the CSR")
		}
	}
	return res, nil
}

// permanentTransportError: TLS trust and handshake refusals do not heal
// by retrying.
func permanentTransportError(err error) bool {
	var (
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
		header  tls.RecordHeaderError
		alert   tls.AlertError
	)
	if errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert) {
		return true
	}
	// An alert from the server (it refused our certificate or our TLS
	// parameters) has an unexported type over TCP; its text is stable.
	return strings.Contains(err.Error(), "remote error: tls: ")
}

// unwrapURLError drops *url.Error's "Put \"https://...\":" prefix; the
// caller names the request itself.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactQuery drops the query string of a path for messages.
func redactQuery(p string) string {
	p, _, _ = strings.Cut(p, "?")
	return p
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// withEKCertificate is cfg.Payload with the member tpmEkCertificate added.
func withEKCertificate(cfg Config) (json.RawMessage, error) {
	if cfg.TPM == nil {
		return nil, invalidConfig("TPMEKCertificate needs TPM")
	}
	obj := map[string]json.RawMessage{}
	if cfg.Payload != nil {
		if err := json.Unmarshal(cfg.Payload, &obj); err != nil || obj == nil {
			return nil, invalidConfig("Payload must be a JSON object to carry TPMEKCertificate")
		}
	}
	b, err := json.Marshal(base64.StdEncoding.EncodeToString(cfg.TPMEKCertificate))
	if err != nil {
		return nil, err
	}
	obj[dps.PayloadEKCertificateField] = b
	return json.Marshal(obj)
}
