package device

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/dps"
)

// API versions the client sends (docs/protocol.md#conventions).
const (
	// DefaultAPIVersion is sent when no CSR is sent.
	DefaultAPIVersion = dps.DeviceAPIVersion
	// CSRAPIVersion is the first version with the csr field; it is sent
	// when a CSR is.
	CSRAPIVersion = dps.CSRAPIVersion
)

// Defaults of Config.
const (
	DefaultTokenTTL       = time.Hour
	DefaultMaxRetries     = 8
	DefaultMaxWait        = 5 * time.Minute
	DefaultRequestTimeout = 30 * time.Second
	// DefaultPollInterval is the wait between operation polls when the
	// service sends no usable Retry-After (missing, 0, a date or more
	// than MaxRetryAfter), as the C SDK does.
	DefaultPollInterval = time.Second
	// MaxRetryAfter is the largest Retry-After honoured.
	MaxRetryAfter = 300 * time.Second
)

// Backoff of transient failures without a usable Retry-After: the n-th
// retry waits between half and all of min(minBackoff·2ⁿ, maxBackoff).
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// Config configures a registration. Endpoint, IDScope and exactly one of
// SymmetricKey, GroupKey, Certificate or TPM are required.
type Config struct {
	// Endpoint is the service's host[:port]; the port is 443 when absent,
	// 8883 with TransportMQTT. An https:// prefix is accepted.
	Endpoint string
	// Transport is TransportHTTPS (the default when empty), TransportMQTT
	// or TransportMQTTWS. TPM is offered over HTTPS only, as by Azure.
	Transport string
	// IDScope of the provisioning service instance.
	IDScope string
	// RegistrationID of the device. With Certificate it defaults to the
	// leaf's common name.
	RegistrationID string
	// APIVersion sent in every request: CSRAPIVersion when a CSR is sent,
	// DefaultAPIVersion otherwise, when empty.
	APIVersion string

	// SymmetricKey is the device's own key (individual enrollment, or
	// a key already derived from a group key), decoded from base64.
	SymmetricKey []byte
	// GroupKey is an enrollment group's key, decoded from base64; the
	// device key is derived from it and the registration ID
	// (sas.DeriveDeviceKey).
	GroupKey []byte
	// Certificate authenticates the device by TLS client certificate
	// (X.509 attestation): the leaf and any intermediates, leaf first,
	// with its private key. It is always presented when the server asks.
	Certificate *tls.Certificate
	// TPM authenticates the device with its TPM (TPM attestation, the
	// Azure flow: EK challenge, then a SAS signed by the TPM); *TPM over
	// /dev/tpmrm0 or a simulator. RegistrationID defaults to the EK's
	// (dps.TPMRegistrationID).
	TPM TPMSecurity
	// TPMEKCertificate is the TPM's EK certificate, DER (a zdps
	// extension; real TPMs keep it in NV index 0x01c00002). It is sent
	// as the payload member tpmEkCertificate, which zdps checks against
	// its TPM manufacturer roots. It needs TPM; a Payload then must be a
	// JSON object.
	TPMEKCertificate []byte

	// Payload is sent as the registration payload when set; it must be
	// valid JSON.
	Payload json.RawMessage
	// CSR is a DER PKCS#10 request to send; its CN should be the
	// registration ID.
	CSR []byte
	// GenerateKey makes Register generate a P-256 key and a CSR for it;
	// the key is returned in Result.PrivateKey. Mutually exclusive with
	// CSR.
	GenerateKey bool

	// RootCAs the service's TLS certificate must chain to; the system
	// roots when nil.
	RootCAs *x509.CertPool
	// HTTPClient, when set, is used as is: its transport must trust the
	// service and, for X.509, present Certificate (RootCAs and
	// Certificate are then not applied). By default Register uses a
	// client of its own that keeps one connection for the whole
	// registration and does not follow redirects.
	HTTPClient *http.Client
	// TLSConfig, when set, is cloned for the MQTT connections (HTTPS
	// uses HTTPClient instead): it must trust the service; RootCAs is
	// then not applied, and Certificate is presented only when TLSConfig
	// has no client certificate of its own.
	TLSConfig *tls.Config
	// TokenTTL is the lifetime of the SAS tokens; DefaultTokenTTL when 0.
	TokenTTL time.Duration
	// RequestTimeout bounds each HTTP exchange; DefaultRequestTimeout
	// when 0.
	RequestTimeout time.Duration
	// MaxRetries bounds consecutive transient failures (429, 5xx,
	// network errors) of one request; DefaultMaxRetries when 0, none
	// when negative.
	MaxRetries int
	// MaxWait bounds the whole registration, retries and polls included,
	// as measured by Now; DefaultMaxWait when 0. A deadline on the
	// context bounds it too.
	MaxWait time.Duration
	// UserAgent of the requests; "zdps-device-go" when empty.
	UserAgent string
	// Logger receives one debug record per request and per wait, with
	// no key, token or private key; nothing is logged when nil.
	Logger *slog.Logger

	// Now is the clock of token expiry and MaxWait; time.Now when nil.
	Now func() time.Time
	// Sleep waits d or until ctx ends; a timer when nil.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) that spreads backoff waits;
	// math/rand/v2.Float64 when nil.
	Jitter func() float64
}

// Result is the outcome of a registration that ended "assigned".
type Result struct {
	RegistrationID string
	OperationID    string
	// Status is "assigned".
	Status      string
	AssignedHub string
	DeviceID    string
	// Substatus says how this registration relates to earlier ones
	// (initialAssignment, deviceDataMigrated, ...).
	Substatus string
	// EnrollmentGroupID names the group that admitted the device, empty
	// for an individual enrollment.
	EnrollmentGroupID string
	// Payload is the payload the service returned (from a custom
	// allocation webhook, or the device's own), nil when none.
	Payload json.RawMessage
	// IssuedCertificateChain is the operational certificate issued from
	// the CSR: leaf first, then intermediates, then the root. Nil when no
	// CSR was sent or the service issued none.
	IssuedCertificateChain []*x509.Certificate
	// PrivateKey is the key Register generated (GenerateKey), nil
	// otherwise. It is the key of the issued leaf.
	PrivateKey crypto.Signer
	// Raw is the final RegistrationOperationStatus as the service sent
	// it.
	Raw json.RawMessage
}

// TLSCertificate pairs the issued chain with the generated key, ready for
// a TLS client (for example the device's connection to its hub).
func (r *Result) TLSCertificate() (tls.Certificate, error) {
	if len(r.IssuedCertificateChain) == 0 || r.PrivateKey == nil {
		return tls.Certificate{}, invalidConfig("the result holds no issued certificate and generated key")
	}
	var c tls.Certificate
	for _, cert := range r.IssuedCertificateChain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	c.PrivateKey = r.PrivateKey
	c.Leaf = r.IssuedCertificateChain[0]
	return c, nil
}

// normalizeEndpoint accepts host, host:port and https://host[:port][/].
func normalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if rest, ok := strings.CutPrefix(strings.ToLower(e), "https://"); ok {
		e = strings.TrimSuffix(e[len(e)-len(rest):], "/")
	}
	switch {
	case e == "":
		return "", invalidConfig("Endpoint (host[:port] of the service) is required")
	case strings.Contains(e, "://"):
		return "", invalidConfig("Endpoint %q: only https is supported; give host[:port]", e)
	case strings.ContainsAny(e, "/?#@ \t"):
		return "", invalidConfig("Endpoint %q is not host[:port]", e)
	}
	return e, nil
}
