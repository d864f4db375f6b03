package secops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/export"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/metrics"
	"github.com/zdps/zdps/internal/opsapi"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Config configures security operations: metrics, the audit trail's
// retention and export, and the anomaly rules' responses.
type Config struct {
	MetricsListen    string
	MetricsTokenFile string
	AuditRetention   time.Duration
	AuditExport      []string
	ExportSecretFile string
	ExportCAFile     string
	AlertResponses   []string
}

// Register adds the security operations flags to zdps serve's.
func (c *Config) Register(f *pflag.FlagSet) {
	f.StringVar(&c.MetricsListen, "metrics-listen", "off", "address of a plain-HTTP listener serving only /metrics for Prometheus (e.g. 127.0.0.1:9090), or off; /metrics on the main listener needs a ServiceConfig SAS or the scrape token")
	f.StringVar(&c.MetricsTokenFile, "metrics-token-file", "", "file holding a bearer token that may scrape /metrics on the main listener")
	f.DurationVar(&c.AuditRetention, "audit-retention", 0, "delete audit events older than this (a signed checkpoint keeps the rest verifiable); 0 keeps everything")
	f.StringArrayVar(&c.AuditExport, "audit-export", nil, "stream every audit event and alert to a SIEM, at least once (repeatable): file:PATH (JSON Lines), syslog+tcp://HOST:PORT or syslog+tls://HOST:PORT (RFC 5424, octet-counted), or an https:// webhook URL")
	f.StringVar(&c.ExportSecretFile, "audit-export-secret-file", "", "file holding the HMAC secret that signs audit webhook batches (X-Zdps-Signature)")
	f.StringVar(&c.ExportCAFile, "audit-export-ca-file", "", "PEM CAs to trust for syslog+tls and https export receivers (default: the system roots)")
	f.StringArrayVar(&c.AlertResponses, "alert-response", nil, "automatic response of an anomaly rule, RULE=none|throttle-source|disable-enrollment (repeatable); rules: "+strings.Join(detectRules, ", "))
}

var detectRules = []string{detect.RuleClonedCredential, detect.RuleBruteForce, detect.RuleEnumeration, detect.RuleBurst, detect.RuleFirmwareDowngrade, detect.RuleRenewalRevoked}

// Parts are the security operations parts serve wires in: the metrics,
// the audit trail, the alerts and the source blocklist the pipeline,
// the use cases and the transports are handed.
type Parts struct {
	Metrics   *metrics.Metrics
	Trail     *audit.Trail
	Alerts    *detect.Alerts
	Blocks    *detect.Blocklist
	cfg       Config
	exporters []*export.Exporter
	watch     *export.Exporter
	backend   store.Backend
	log       *slog.Logger
	token     string
}

// New builds the parts over the store's backend: the trail is signed
// under a key derived from kek, and reports to m.
func New(cfg Config, backend store.Backend, kek []byte, m *metrics.Metrics, log *slog.Logger) (*Parts, error) {
	l, err := audit.New(audit.Config{Backend: backend, Signer: audit.NewHMACSigner(kek), Logger: log})
	if err != nil {
		return nil, err
	}
	buf := l.NewBuffer(0)
	buf.OnRecord = m.AuditEvents
	s := &Parts{cfg: cfg, Metrics: m, Trail: &audit.Trail{Log: l, Buffer: buf}, log: log, backend: backend}
	s.Alerts = &detect.Alerts{Backend: backend, Recorder: l}
	s.Blocks = &detect.Blocklist{Backend: backend}
	if cfg.MetricsTokenFile != "" {
		b, err := os.ReadFile(cfg.MetricsTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--metrics-token-file: %w", err)
		}
		if s.token = strings.TrimSpace(string(b)); len(s.token) < 16 {
			return nil, errors.New("--metrics-token-file: the token must be at least 16 characters")
		}
	}
	for _, spec := range cfg.AuditExport {
		sink, err := s.sink(spec)
		if err != nil {
			return nil, fmt.Errorf("--audit-export %q: %w", spec, err)
		}
		e, err := export.New(export.Config{Backend: backend, Source: l, Sink: sink, Name: exportName(spec), Logger: log})
		if err != nil {
			return nil, err
		}
		s.exporters = append(s.exporters, e)
	}
	return s, nil
}

// exportName keys a sink's cursor by what it is, so reordering the flags
// keeps each cursor.
func exportName(spec string) string {
	if u, err := url.Parse(spec); err == nil && u.User != nil {
		u.User = nil
		spec = u.String()
	}
	return spec
}

func (s *Parts) sink(spec string) (export.Sink, error) {
	var roots *x509.CertPool
	if s.cfg.ExportCAFile != "" {
		pem, err := os.ReadFile(s.cfg.ExportCAFile)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, errors.New("--audit-export-ca-file holds no PEM certificate")
		}
	}
	switch {
	case strings.HasPrefix(spec, "file:"):
		return export.OpenFile(strings.TrimPrefix(spec, "file:"))
	case strings.HasPrefix(spec, "syslog+tcp://"), strings.HasPrefix(spec, "syslog+tls://"):
		u, err := url.Parse(spec)
		if err != nil || u.Host == "" {
			return nil, errors.New("want syslog+tcp://HOST:PORT or syslog+tls://HOST:PORT")
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, errors.New("the syslog address needs a port")
		}
		host, _ := os.Hostname()
		sk := &export.SyslogSink{Addr: u.Host, Hostname: host}
		if u.Scheme == "syslog+tls" {
			sk.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: u.Hostname()}
		}
		return sk, nil
	case strings.HasPrefix(spec, "https://"):
		var secret []byte
		if s.cfg.ExportSecretFile != "" {
			b, err := os.ReadFile(s.cfg.ExportSecretFile)
			if err != nil {
				return nil, err
			}
			secret = []byte(strings.TrimSpace(string(b)))
		}
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}}}
		return &export.WebhookSink{URL: spec, Secret: secret, Client: client}, nil
	}
	return nil, errors.New("want file:PATH, syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT or https://URL")
}

// responses parses --alert-response.
func (s *Parts) responses() (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range s.cfg.AlertResponses {
		rule, resp, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--alert-response %q: want RULE=RESPONSE", kv)
		}
		known := false
		for _, r := range detectRules {
			known = known || r == rule
		}
		if !known {
			return nil, fmt.Errorf("--alert-response %q: unknown rule (one of %s)", kv, strings.Join(detectRules, ", "))
		}
		out[rule] = resp
	}
	return out, nil
}

// WatchAlerts builds the detector over the sealed trail; its responses
// disable enrollments through m, the management use cases.
func (s *Parts) WatchAlerts(backend store.Backend, m *manage.Service) error {
	resp, err := s.responses()
	if err != nil {
		return err
	}
	w, err := detect.NewWatch(detect.WatchConfig{Backend: backend, Recorder: s.Trail.Log, Detector: detect.New(detect.Config{}),
		Responses: resp, Responder: &responder{m: m, blocks: s.Blocks}, Logger: s.log,
		OnAlert: func(r *detect.Record) { s.Metrics.Alert(r.Rule, r.Severity) }})
	if err != nil {
		return fmt.Errorf("--alert-response: %w", err)
	}
	s.watch, err = export.New(export.Config{Backend: backend, Source: s.Trail.Log, Sink: w, Name: "detector", Logger: s.log})
	return err
}

// OpsAPI builds the security operations routes.
func (s *Parts) OpsAPI(host opsapi.Host, st *store.Store, authority *ca.CA, settings posture.Settings) (*opsapi.API, error) {
	src := posture.NewStoreSource(st)
	return opsapi.New(opsapi.Config{Host: host, Trail: s.Trail.Log, Alerts: s.Alerts, Metrics: s.Metrics.Handler(), ScrapeToken: s.token,
		Posture: func(ctx context.Context, th posture.Thresholds) (*posture.Report, error) {
			return posture.Compute(ctx, src, posture.Options{Thresholds: th, CA: []*x509.Certificate{authority.Intermediate(), authority.Root()}, Settings: settings})
		}})
}

// Start runs the sealer, the buffer, the exporters, the detector, the
// retention and the metrics listener until ctx ends.
func (s *Parts) Start(ctx context.Context, authority *ca.CA) error {
	s.Metrics.CertificateExpiry("root", authority.Root().NotAfter)
	s.Metrics.CertificateExpiry("intermediate", authority.Intermediate().NotAfter)
	go s.watchIssuedExpiry(ctx)
	go s.Trail.Log.Run(ctx, audit.DefaultSealInterval)
	go s.Trail.Buffer.Run(ctx, 0)
	for _, e := range s.exporters {
		go e.Run(ctx)
	}
	if s.watch != nil {
		go s.watch.Run(ctx)
	}
	if s.cfg.AuditRetention > 0 {
		go func() {
			t := time.NewTicker(time.Hour)
			defer t.Stop()
			for {
				if n, err := s.Trail.Log.Prune(ctx, time.Now().Add(-s.cfg.AuditRetention)); err != nil && ctx.Err() == nil {
					s.log.Warn("audit retention failed", "error", err)
				} else if n > 0 {
					s.log.Info("audit events past retention deleted", "count", n)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	if s.cfg.MetricsListen == "" || s.cfg.MetricsListen == "off" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return nil
}

// responder carries out alert responses: a blocked source through the
// shared blocklist, a disabled enrollment through the management use
// cases (so the change is audited, with the detector as its actor, and
// revokes the devices' certificates like any disable).
type responder struct {
	m      *manage.Service
	blocks *detect.Blocklist
}

func (r *responder) ThrottleSource(ctx context.Context, network string, d time.Duration) error {
	return r.blocks.ThrottleSource(ctx, network, d)
}

func (r *responder) DisableEnrollment(ctx context.Context, registrationID, group string) error {
	ctx = audit.WithActor(ctx, "detector")
	if registrationID != "" {
		e, err := manage.Get(ctx, r.m, manage.Enrollments, registrationID)
		switch {
		case err == nil:
			if e.ProvisioningStatus == enrollment.StatusDisabled {
				return nil
			}
			e.ProvisioningStatus = enrollment.StatusDisabled
			_, err = manage.Put(ctx, r.m, manage.Enrollments, e, store.Condition{IfMatch: e.ETag})
			return err
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	if group == "" {
		return nil
	}
	g, err := manage.Get(ctx, r.m, manage.Groups, group)
	if err != nil || g.ProvisioningStatus == enrollment.StatusDisabled {
		return err
	}
	g.ProvisioningStatus = enrollment.StatusDisabled
	_, err = manage.Put(ctx, r.m, manage.Groups, g, store.Condition{IfMatch: g.ETag})
	return err
}

// MetricsOpen: the metrics listener answers beyond the loopback
// interface without authentication.
func (c Config) MetricsOpen() bool {
	if c.MetricsListen == "" || c.MetricsListen == "off" {
		return false
	}
	host, _, err := net.SplitHostPort(c.MetricsListen)
	if err != nil {
		return true
	}
	ip := net.ParseIP(host)
	return host != "localhost" && (ip == nil || !ip.IsLoopback())
}

// issuedExpiryEvery is how often the earliest expiry of the unrevoked
// operational certificates is read for the metric (a scan of the
// certificate records, page by page).
const issuedExpiryEvery = 10 * time.Minute

// watchIssuedExpiry sets zdps_certificate_expiry_timestamp_seconds{certificate="issued"}
// to the earliest NotAfter of the unexpired, unrevoked certificates.
func (s *Parts) watchIssuedExpiry(ctx context.Context) {
	certs := revocation.Certificates(s.backend, nil)
	t := time.NewTicker(issuedExpiryEvery)
	defer t.Stop()
	for {
		var earliest time.Time
		now := time.Now()
		for cont := ""; ; {
			page, next, err := certs.List(ctx, cont, 500)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("issued certificate expiry: read failed", "error", err)
				}
				break
			}
			for _, c := range page {
				if !c.Revoked() && c.NotAfter.After(now) && (earliest.IsZero() || c.NotAfter.Before(earliest)) {
					earliest = c.NotAfter
				}
			}
			if next == "" {
				break
			}
			cont = next
		}
		s.Metrics.CertificateExpiry("issued", earliest)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
