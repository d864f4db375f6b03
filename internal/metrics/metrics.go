package metrics

import (
	"context"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zdps/zdps/internal/store"
)

// Label values.
var (
	attestations = []string{"symmetricKey", "x509", "tpm", "renewal"}
	transports   = []string{"https", "mqtt", "mqtt-ws"}
	outcomes     = []string{"assigned", "failed", "disabled", "refused", "error"}
	// ErrorClasses are the refusal and error classes of registrations.
	ErrorClasses = []string{"", "unauthorized", "invalid", "throttled", "not-found", "busy", "firmware-downgrade", "renewal-revoked", "internal"}
	throttleKind = []string{"poll", "register", "group-register", "instance-register", "assigning", "source"}
	txKinds      = []string{"view", "update"}
)

const other = "other"

func bound(v string, set []string) string {
	if slices.Contains(set, v) {
		return v
	}
	return other
}

// Metrics holds every zdps metric and the registry they live in.
type Metrics struct {
	reg *prometheus.Registry

	registrations  *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	certificates   *prometheus.CounterVec
	throttled      *prometheus.CounterVec
	allocations    *prometheus.CounterVec
	webhookLatency prometheus.Histogram
	webhookFails   prometheus.Counter
	txLatency      *prometheus.HistogramVec
	certExpiry     *prometheus.GaugeVec
	alerts         *prometheus.CounterVec
	auditEvents    prometheus.Counter
	mqttConns      prometheus.Gauge
}

// New registers every metric on a fresh registry, with the Go runtime and
// process collectors and zdps_build_info.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zdps_registrations_total",
		Help: "Device registrations by attestation, transport, outcome and error class."}, []string{"attestation", "transport", "outcome", "error_class"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "zdps_registration_duration_seconds",
		Help:    "Time from a register request to its answer.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"transport", "outcome"})
	m.certificates = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zdps_certificates_total",
		Help: "Operational certificates issued and renewed."}, []string{"event"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zdps_throttled_requests_total",
		Help: "Device requests refused by a rate limit, by limit."}, []string{"limit"})
	m.allocations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zdps_allocations_total",
		Help: "Allocation decisions by hub and policy."}, []string{"hub", "policy"})
	m.webhookLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "zdps_allocation_webhook_duration_seconds",
		Help: "Custom allocation webhook calls.", Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}})
	m.webhookFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "zdps_allocation_webhook_failures_total",
		Help: "Custom allocation webhook calls that failed."})
	m.txLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "zdps_store_transaction_duration_seconds",
		Help: "Store transactions, retries included.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"kind"})
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zdps_certificate_expiry_timestamp_seconds",
		Help: "Expiry of the CA certificates (root, intermediate) and the earliest-expiring issued one (issued)."}, []string{"certificate"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zdps_alerts_total",
		Help: "Alerts raised by anomaly rule and severity."}, []string{"rule", "severity"})
	m.auditEvents = prometheus.NewCounter(prometheus.CounterOpts{Name: "zdps_audit_events_total",
		Help: "Audit events recorded."})
	m.mqttConns = prometheus.NewGauge(prometheus.GaugeOpts{Name: "zdps_mqtt_connections",
		Help: "Open MQTT connections (TLS and WebSocket)."})
	for _, c := range []prometheus.Collector{m.registrations, m.latency, m.certificates, m.throttled, m.allocations, m.webhookLatency, m.webhookFails,
		m.txLatency, m.certExpiry, m.alerts, m.auditEvents, m.mqttConns} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(buildInfo())
	return m
}

func buildInfo() prometheus.Collector {
	version, commit := "(devel)", ""
	goVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = bi.Main.Version, bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "zdps_build_info", Help: "The zdps build: version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": goVersion}})
	g.Set(1)
	return g
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry, for tests and embedding.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Registration counts one register request's answer.
func (m *Metrics) Registration(attestation, transport, outcome, errorClass string, d time.Duration) {
	if m == nil {
		return
	}
	tr, out := bound(transport, transports), bound(outcome, outcomes)
	m.registrations.WithLabelValues(bound(attestation, append(attestations, "")), tr, out, bound(errorClass, ErrorClasses)).Inc()
	m.latency.WithLabelValues(tr, out).Observe(d.Seconds())
}

// Certificate counts an issued, renewed or revoked certificate.
func (m *Metrics) Certificate(event string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.certificates.WithLabelValues(bound(event, []string{"issued", "renewed", "revoked"})).Add(float64(n))
}

// Throttled counts a refusal by a rate limit.
func (m *Metrics) Throttled(limit string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(bound(limit, throttleKind)).Inc()
}

// Allocation counts a decision; hub is a configured hub's name.
func (m *Metrics) Allocation(hub, policy string) {
	if m == nil {
		return
	}
	m.allocations.WithLabelValues(hub, bound(policy, []string{"hashed", "static", "geoLatency", "custom", "default"})).Inc()
}

// Webhook observes one custom allocation webhook call.
func (m *Metrics) Webhook(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.webhookLatency.Observe(d.Seconds())
	if err != nil {
		m.webhookFails.Inc()
	}
}

// RevokedCertificates exports how many revoked certificates are on
// record, read at most every 30 s (count reads an index); call it once.
func (m *Metrics) RevokedCertificates(count func(context.Context) (int, error)) {
	if m == nil || count == nil {
		return
	}
	var mu sync.Mutex
	var last float64
	var at time.Time
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zdps_certificates_revoked",
		Help: "Revoked operational certificates on record (the CRL's entries until they are pruned)."}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) >= 30*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if n, err := count(ctx); err == nil {
				last, at = float64(n), time.Now()
			}
		}
		return last
	}))
}

// StoreRetries exports the backend's count of transactions run again
// after a serialization conflict (PostgreSQL's Retries); call it once.
func (m *Metrics) StoreRetries(count func() int64) {
	if m == nil || count == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "zdps_store_transaction_retries_total",
		Help: "Store transactions run again after a serialization conflict."}, func() float64 { return float64(count()) }))
}

// StoreCounters exports the PostgreSQL backend's round trips (statements,
// batches, BEGINs and COMMITs), the statements (each of a batch counts),
// and the conflicts of its conditional transactions (a compare-and-swap
// that found a key changed since the transaction read it: counted among
// the retries too); call it once.
func (m *Metrics) StoreCounters(roundTrips, statements, conflicts func() int64) {
	if m == nil || roundTrips == nil || statements == nil || conflicts == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "zdps_store_round_trips_total",
			Help: "Statements, batches, BEGINs and COMMITs sent to the database."}, func() float64 { return float64(roundTrips()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "zdps_store_statements_total",
			Help: "Statements sent to the database, each statement of a batch counted."}, func() float64 { return float64(statements()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "zdps_store_conflicts_total",
			Help: "Store transactions run again because a key changed between their read and their write."}, func() float64 { return float64(conflicts()) }),
	)
}

// CertificateExpiry sets the expiry of a CA certificate ("root",
// "intermediate") or of the earliest issued one ("issued").
func (m *Metrics) CertificateExpiry(which string, at time.Time) {
	if m == nil || at.IsZero() {
		return
	}
	m.certExpiry.WithLabelValues(bound(which, []string{"root", "intermediate", "issued"})).Set(float64(at.Unix()))
}

// Alert counts a raised alert.
func (m *Metrics) Alert(rule, severity string) {
	if m == nil {
		return
	}
	m.alerts.WithLabelValues(rule, bound(severity, []string{"high", "medium", "low"})).Inc()
}

// AuditEvents counts n recorded audit events.
func (m *Metrics) AuditEvents(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.auditEvents.Add(float64(n))
}

// MQTTConnections moves the open MQTT connection gauge by delta.
func (m *Metrics) MQTTConnections(delta int) {
	if m == nil {
		return
	}
	m.mqttConns.Add(float64(delta))
}

// Backend wraps b so that its transactions are timed.
func (m *Metrics) Backend(b store.Backend) store.Backend {
	if m == nil {
		return b
	}
	return &timedBackend{Backend: b, m: m}
}

type timedBackend struct {
	store.Backend
	m *Metrics
}

func (t *timedBackend) View(ctx context.Context, fn func(store.Tx) error) error {
	start := time.Now()
	err := t.Backend.View(ctx, fn)
	t.m.txLatency.WithLabelValues(txKinds[0]).Observe(time.Since(start).Seconds())
	return err
}

func (t *timedBackend) Update(ctx context.Context, fn func(store.Tx) error) error {
	start := time.Now()
	err := t.Backend.Update(ctx, fn)
	t.m.txLatency.WithLabelValues(txKinds[1]).Observe(time.Since(start).Seconds())
	return err
}

// Unwrap is the wrapped backend (optional capabilities such as
// store.Snapshotter are found on it).
func (t *timedBackend) Unwrap() store.Backend { return t.Backend }
