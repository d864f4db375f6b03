package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Attestation kinds a run can simulate.
const (
	SymmetricIndividual = "symmetric-individual"
	SymmetricGroup      = "symmetric-group"
	X509                = "x509"
	TPM                 = "tpm"
)

// TLS key exchanges of Config.KeyExchange.
const (
	KeyExchangeX25519 = "x25519"
	KeyExchangeP256   = "p256"
	KeyExchangeHybrid = "x25519mlkem768"
)

// ErrInvalidConfig: Config is incomplete or contradictory.
var ErrInvalidConfig = errors.New("bench: invalid config")

// DefaultTimeout bounds one device's registration, retries included.
const DefaultTimeout = 2 * time.Minute

// Config configures a run. Endpoint, IDScope, Client, Attestation, Devices
// and Concurrency are required.
type Config struct {
	// Endpoint is the device API's host:port.
	Endpoint string
	// Endpoints are the device APIs of further replicas of the same
	// instance: device i registers at the (i mod n)-th of Endpoint and
	// Endpoints (HTTPS and MQTT over WebSockets; TLS checks every one
	// against Endpoint's host name), and the report has figures per
	// endpoint.
	Endpoints []string
	// Transport the devices register over: device.TransportHTTPS (the
	// default when empty), device.TransportMQTT or device.TransportMQTTWS.
	// Over MQTT every device opens its own TLS connection: CONNECT,
	// SUBSCRIBE, the register PUBLISH, its answer, DISCONNECT.
	Transport string
	// MQTTEndpoint is the MQTT listener's host:port, for TransportMQTT;
	// Endpoint's host and port 8883 when empty.
	MQTTEndpoint string
	// IDScope of the instance.
	IDScope string
	// RootCAs the server's TLS certificate chains to; the system roots
	// when nil.
	RootCAs *x509.CertPool
	// Client is the service API client for setup, cleanup and, without
	// setup, reading the keys of existing enrollments.
	Client *client.Client

	// Attestation is SymmetricIndividual, SymmetricGroup, X509 or TPM
	// (software TPMs, internal/softtpm: the Azure two-round flow with
	// real cryptography; RSA key generation being slow, devices share
	// TPMKeyPool endorsement keys under distinct registration IDs).
	Attestation string
	// Devices is how many devices register; Concurrency how many at once.
	Devices, Concurrency int
	// Rate paces registration starts per second; 0 starts them as fast as
	// Concurrency allows.
	Rate float64
	// CSR makes every device send a P-256 CSR and get an operational
	// certificate. Keys and CSRs are made before the timed phase unless
	// GenerateInline.
	CSR            bool
	GenerateInline bool
	// KeepAlive shares keep-alive connections between devices; by default
	// every device opens its own TLS connection and closes it, as real
	// devices do.
	KeepAlive bool
	// TLSResumption lets devices resume TLS sessions (one session cache
	// for the whole run); by default session tickets are disabled and
	// every handshake is full.
	TLSResumption bool
	// KeyExchange is the TLS key exchange the devices offer: KeyExchangeX25519
	// (the default: what device TLS stacks such as mbedTLS, wolfSSL and
	// OpenSSL before 3.5 negotiate), KeyExchangeP256, or
	// KeyExchangeHybrid (X25519MLKEM768, Go's and OpenSSL 3.5's default,
	// with X25519 as fallback).
	KeyExchange string

	// Setup creates the enrollments or group (and hubs when the instance
	// has none) before the run; Cleanup deletes them and the run's
	// registration records afterwards.
	Setup, Cleanup bool
	// Prefix names the run: registration IDs are Prefix-0000000... and
	// the enrollment group is Prefix. Default: "bench-" and 6 random hex
	// digits. Without Setup it must name existing enrollments.
	Prefix string

	// ServerPID, when set, is the zdps serve process whose CPU time is
	// measured (Linux /proc; the server must run on this machine);
	// ServerPIDs are more (the replicas), whose CPU time adds up.
	ServerPID  int
	ServerPIDs []int
	// DatabasePIDs are processes of the database the servers use (the
	// PostgreSQL backends of their connections), whose CPU time is reported
	// apart; a process that ends during the run is left out.
	DatabasePIDs []int
	// StoreCounters, when set, reads the servers' store counters (their
	// /metrics, summed); the report shows their growth over the timed
	// phase, per registration.
	StoreCounters func(ctx context.Context) (StoreCounters, error)
	// Timeout bounds each device's registration; DefaultTimeout when 0.
	Timeout time.Duration
	// Progress is called after each device, from the workers.
	Progress func(ok bool)
	// Phase is called when a phase begins: "setup", "prepare",
	// "register", "cleanup".
	Phase func(name string)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// runner is the state of one run.
type runner struct {
	cfg     Config
	devices []simDevice
	ca      *testCA
	// groupKey is the symmetric group's key.
	groupKey []byte

	mu                 sync.Mutex
	createdEnrollments int
	createdGroup       bool
	createdHubs        []string
}

func (r *runner) groupID() string { return r.cfg.Prefix }

// serverPIDs is every server process to measure.
func (c *Config) serverPIDs() []int {
	var pids []int
	for _, p := range append([]int{c.ServerPID}, c.ServerPIDs...) {
		if p > 0 {
			pids = append(pids, p)
		}
	}
	return pids
}

func (c *Config) validate() error {
	switch c.Attestation {
	case SymmetricIndividual, SymmetricGroup, X509, TPM:
	default:
		return fmt.Errorf("%w: attestation %q (want %s, %s, %s or %s)", ErrInvalidConfig, c.Attestation, SymmetricIndividual, SymmetricGroup, X509, TPM)
	}
	switch {
	case c.Endpoint == "" || c.IDScope == "":
		return fmt.Errorf("%w: Endpoint and IDScope are required", ErrInvalidConfig)
	case c.Client == nil:
		return fmt.Errorf("%w: Client (service API) is required", ErrInvalidConfig)
	case c.Devices < 1 || c.Concurrency < 1:
		return fmt.Errorf("%w: devices and concurrency must be at least 1", ErrInvalidConfig)
	case c.Rate < 0 || c.Timeout < 0:
		return fmt.Errorf("%w: rate and timeout must not be negative", ErrInvalidConfig)
	case c.Devices > 10_000_000:
		return fmt.Errorf("%w: at most 10,000,000 devices", ErrInvalidConfig)
	}
	switch c.Transport {
	case "":
		c.Transport = device.TransportHTTPS
	case device.TransportHTTPS, device.TransportMQTT, device.TransportMQTTWS:
	default:
		return fmt.Errorf("%w: transport %q (want %s, %s or %s)", ErrInvalidConfig, c.Transport, device.TransportHTTPS, device.TransportMQTT, device.TransportMQTTWS)
	}
	if c.Transport != device.TransportHTTPS {
		switch {
		case c.Attestation == TPM:
			return fmt.Errorf("%w: TPM attestation is offered over HTTPS only", ErrInvalidConfig)
		case c.KeepAlive:
			return fmt.Errorf("%w: keep-alive connections are for HTTPS; over MQTT each device has its own connection", ErrInvalidConfig)
		}
	}
	for _, ep := range c.Endpoints {
		if ep == "" {
			return fmt.Errorf("%w: empty endpoint", ErrInvalidConfig)
		}
	}
	if len(c.Endpoints) > 0 && c.Transport == device.TransportMQTT {
		return fmt.Errorf("%w: several endpoints are for HTTPS and MQTT over WebSockets; MQTT has one --mqtt-endpoint", ErrInvalidConfig)
	}
	if c.Transport == device.TransportMQTT && c.MQTTEndpoint == "" {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(c.Endpoint, "https://"))
		if err != nil {
			host = c.Endpoint
		}
		c.MQTTEndpoint = net.JoinHostPort(strings.Trim(host, "[]"), "8883")
	}
	switch c.KeyExchange {
	case "":
		c.KeyExchange = KeyExchangeX25519
	case KeyExchangeX25519, KeyExchangeP256, KeyExchangeHybrid:
	default:
		return fmt.Errorf("%w: key exchange %q (want %s, %s or %s)", ErrInvalidConfig, c.KeyExchange, KeyExchangeX25519, KeyExchangeP256, KeyExchangeHybrid)
	}
	if c.Prefix == "" {
		var b [3]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		c.Prefix = "bench-" + hex.EncodeToString(b[:])
	}
	if err := enrollment.ValidateGroupID(c.Prefix); err != nil {
		return fmt.Errorf("%w: prefix: %w", ErrInvalidConfig, err)
	}
	if err := enrollment.ValidateRegistrationID(c.Prefix + "-0000000"); err != nil {
		return fmt.Errorf("%w: prefix: %w", ErrInvalidConfig, err)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Progress == nil {
		c.Progress = func(bool) {}
	}
	if c.Phase == nil {
		c.Phase = func(string) {}
	}
	return nil
}

// Run provisions cfg.Devices simulated devices and reports. A run whose
// devices fail still returns a report (errors by kind) and a nil error;
// the error is for runs that could not take place (configuration, setup,
// preparation) or whose cleanup failed, in which case the report is
// returned too.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, devices: make([]simDevice, cfg.Devices)}
	for i := range r.devices {
		r.devices[i].regID = fmt.Sprintf("%s-%07d", cfg.Prefix, i)
	}
	rep := &Report{
		Attestation: cfg.Attestation, Transport: cfg.Transport, Devices: cfg.Devices, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
		CSR: cfg.CSR, CSRPregenerated: cfg.CSR && !cfg.GenerateInline, KeepAlive: cfg.KeepAlive, TLSResumption: cfg.TLSResumption, KeyExchange: cfg.KeyExchange,
		Errors: map[string]int{},
	}
	runErr := r.run(ctx, rep)
	if cfg.Setup && cfg.Cleanup {
		cfg.Phase("cleanup")
		// Clean up even after Ctrl-C, within bounds.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		start := time.Now()
		err := r.cleanup(cctx)
		cancel()
		rep.CleanupSeconds = time.Since(start).Seconds()
		if err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("bench: cleanup: %w", err))
		}
	}
	return rep, runErr
}

func (r *runner) run(ctx context.Context, rep *Report) error {
	start := time.Now()
	if r.cfg.Setup {
		r.cfg.Phase("setup")
		if err := r.setup(ctx); err != nil {
			return err
		}
	} else if err := r.fetchKeys(ctx); err != nil {
		return err
	}
	rep.SetupSeconds = time.Since(start).Seconds()
	r.cfg.Phase("prepare")
	start = time.Now()
	if err := r.prepare(ctx); err != nil {
		return err
	}
	rep.PrepareSeconds = time.Since(start).Seconds()
	r.cfg.Phase("register")
	return r.register(ctx, rep)
}

// register is the timed phase.
func (r *runner) register(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	host, _, err := net.SplitHostPort(strings.TrimPrefix(cfg.Endpoint, "https://"))
	if err != nil {
		host = cfg.Endpoint
	}
	var full, resumed atomic.Int64
	pin := &chainPin{roots: cfg.RootCAs, host: host}
	base := &tls.Config{
		MinVersion:             tls.VersionTLS12,
		ServerName:             host,
		SessionTicketsDisabled: !cfg.TLSResumption,
		CurvePreferences:       curves(cfg.KeyExchange),
		// The server's chain is verified in VerifyConnection, once per
		// distinct chain (chainPin): a real device spends that CPU on its
		// own processor, the simulator would spend it on the server's.
		// TLS still checks the server's CertificateVerify signature with
		// the pinned leaf's key on every handshake.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := pin.verify(cs.PeerCertificates); err != nil {
				return err
			}
			if cs.DidResume {
				resumed.Add(1)
			} else {
				full.Add(1)
			}
			return nil
		},
	}
	if cfg.TLSResumption {
		base.ClientSessionCache = tls.NewLRUClientSessionCache(max(cfg.Concurrency, 64))
	}
	var shared *http.Transport
	if cfg.KeepAlive {
		shared = newTransport(base, cfg.Concurrency)
		defer shared.CloseIdleConnections()
	}
	var limiter *Limiter
	if cfg.Rate > 0 {
		limiter = NewLimiter(cfg.Rate, nil, nil)
	}

	eps := cfg.endpoints()
	for i := range r.devices {
		r.devices[i].endpoint = eps[i%len(eps)]
	}
	tally := newPerEndpoint(len(eps))
	var (
		next    atomic.Int64
		mu      sync.Mutex
		samples = make([]time.Duration, 0, len(r.devices))
		wg      sync.WaitGroup
	)
	var counters0 StoreCounters
	countersOK := false
	if cfg.StoreCounters != nil {
		c, err := cfg.StoreCounters(ctx)
		counters0, countersOK = c, err == nil && c.Found
	}
	load0, busy0, self0 := loadAverage(), machineBusy(), selfCPU()
	pids := cfg.serverPIDs()
	var server0 time.Duration
	serverOK := len(pids) > 0
	for _, pid := range pids {
		t, err := processCPU(pid)
		server0 += t
		serverOK = serverOK && err == nil
	}
	db0 := map[int]time.Duration{}
	for _, pid := range cfg.DatabasePIDs {
		if t, err := processCPU(pid); err == nil {
			db0[pid] = t
		}
	}
	begin := time.Now()
	for range min(cfg.Concurrency, len(r.devices)) {
		wg.Go(func() {
			var mine []time.Duration
			for {
				i := int(next.Add(1) - 1)
				if i >= len(r.devices) || ctx.Err() != nil {
					break
				}
				if limiter != nil && limiter.Wait(ctx) != nil {
					break
				}
				d, err := r.registerOne(ctx, &r.devices[i], base, shared)
				ep := i % len(eps)
				if err == nil {
					mine = append(mine, d)
					mu.Lock()
					tally.ok[ep]++
					tally.samples[ep] = append(tally.samples[ep], d)
					mu.Unlock()
				} else {
					kind := ErrorKind(err)
					mu.Lock()
					tally.failed[ep]++
					rep.Errors[kind]++
					if rep.ErrorSamples == nil {
						rep.ErrorSamples = map[string]string{}
					}
					if _, ok := rep.ErrorSamples[kind]; !ok {
						rep.ErrorSamples[kind] = err.Error()
					}
					mu.Unlock()
				}
				cfg.Progress(err == nil)
			}
			mu.Lock()
			samples = append(samples, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	rep.LoadAverage = [2]float64{load0, loadAverage()}
	rep.ElapsedSeconds = elapsed.Seconds()
	rep.Succeeded = len(samples)
	for _, n := range rep.Errors {
		rep.Failed += n
	}
	if elapsed > 0 {
		rep.RegistrationsPerSecond = float64(rep.Succeeded) / elapsed.Seconds()
	}
	rep.LatencyMs = Summarize(samples)
	rep.TLSHandshakes = Handshakes{Full: int(full.Load()), Resumed: int(resumed.Load())}
	perReg := func(d time.Duration) float64 {
		if rep.Succeeded == 0 {
			return 0
		}
		return float64(d.Microseconds()) / 1000 / float64(rep.Succeeded)
	}
	rep.CPU.MachineCPUs = runtime.NumCPU()
	self := selfCPU() - self0
	rep.CPU.ClientSeconds = self.Seconds()
	rep.CPU.ClientMsPerRegistration = perReg(self)
	if serverOK {
		var s1 time.Duration
		for _, pid := range pids {
			t, err := processCPU(pid)
			s1 += t
			serverOK = serverOK && err == nil
		}
		if serverOK {
			rep.CPU.ServerPID = pids[0]
			rep.CPU.ServerPIDs = pids[1:]
			rep.CPU.ServerSeconds = (s1 - server0).Seconds()
			rep.CPU.ServerMsPerRegistration = perReg(s1 - server0)
		}
	}
	if len(db0) > 0 {
		var db time.Duration
		for pid, t0 := range db0 {
			if t, err := processCPU(pid); err == nil {
				db += t - t0
			}
		}
		rep.CPU.DatabaseSeconds = db.Seconds()
		rep.CPU.DatabaseMsPerRegistration = perReg(db)
	}
	if len(eps) > 1 {
		rep.PerEndpoint = tally.figures(eps, elapsed)
	}
	rep.Store = r.storeFigures(ctx, counters0, countersOK, rep.Succeeded)
	if busy0 > 0 {
		busy := machineBusy() - busy0
		rep.CPU.MachineBusySeconds = busy.Seconds()
		rep.CPU.MachineBusyMsPerRegistered = perReg(busy)
	}
	if n := int(next.Load()); ctx.Err() != nil && n < len(r.devices) {
		return fmt.Errorf("bench: stopped after %d of %d devices: %w", min(n, len(r.devices)), len(r.devices), ctx.Err())
	}
	return nil
}

func curves(kx string) []tls.CurveID {
	switch kx {
	case KeyExchangeP256:
		return []tls.CurveID{tls.CurveP256}
	case KeyExchangeHybrid:
		return []tls.CurveID{tls.X25519MLKEM768, tls.X25519}
	}
	return []tls.CurveID{tls.X25519}
}

// chainPin verifies a server chain against the roots and the host name
// the first time it is seen, then accepts exactly that chain again
// without re-verifying it.
type chainPin struct {
	roots    *x509.CertPool
	host     string
	verified sync.Map // string(leaf DER) → struct{}
}

func (p *chainPin) verify(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("bench: the server sent no certificate")
	}
	key := string(chain[0].Raw)
	for _, c := range chain[1:] {
		key += string(c.Raw)
	}
	if _, ok := p.verified.Load(key); ok {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, DNSName: p.host}); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: chain, Err: err}
	}
	p.verified.Store(key, struct{}{})
	return nil
}

// newTransport is an HTTP/1.1 transport (the device SDKs speak HTTP/1.1)
// with tc.
func newTransport(tc *tls.Config, idle int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     device.MaxRetryAfter + 30*time.Second,
		// An empty, non-nil map disables HTTP/2.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

// registerOne registers one device and returns how long it took, from
// before its connection to the assigned answer.
func (r *runner) registerOne(ctx context.Context, d *simDevice, base *tls.Config, shared *http.Transport) (time.Duration, error) {
	cfg := r.cfg
	start := time.Now()
	if cfg.Transport != device.TransportHTTPS {
		return r.registerMQTT(ctx, d, base, start)
	}
	tr := shared
	if tr == nil {
		tc := base
		if d.cert != nil {
			tc = base.Clone()
			cert := d.cert
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		tr = newTransport(tc, 1)
		tr.MaxConnsPerHost = 1
		defer tr.CloseIdleConnections()
	}
	dc := r.deviceConfig(d)
	dc.HTTPClient = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if shared != nil && d.cert != nil {
		// One shared pool cannot present a different certificate per
		// device: X.509 devices keep a transport of their own.
		tc := base.Clone()
		cert := d.cert
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		own := newTransport(tc, 1)
		defer own.CloseIdleConnections()
		dc.HTTPClient.Transport = own
	}
	return registerTimed(ctx, dc, start)
}

// registerMQTT registers one device over its own MQTT connection.
func (r *runner) registerMQTT(ctx context.Context, d *simDevice, base *tls.Config, start time.Time) (time.Duration, error) {
	dc := r.deviceConfig(d)
	dc.Transport = r.cfg.Transport
	// The device presents Certificate on top of the shared settings.
	dc.TLSConfig = base
	if r.cfg.Transport == device.TransportMQTT {
		dc.Endpoint = r.cfg.MQTTEndpoint
	}
	return registerTimed(ctx, dc, start)
}

// deviceConfig is what every transport sends for d: its ID, CSR and
// attestation.
func (r *runner) deviceConfig(d *simDevice) device.Config {
	cfg := r.cfg
	endpoint := d.endpoint
	if endpoint == "" {
		endpoint = cfg.Endpoint
	}
	dc := device.Config{
		Endpoint:       endpoint,
		IDScope:        cfg.IDScope,
		RegistrationID: d.regID,
		CSR:            d.csr,
		GenerateKey:    cfg.CSR && cfg.GenerateInline,
		MaxWait:        cfg.Timeout,
		UserAgent:      "zdps-bench",
	}
	switch {
	case d.cert != nil:
		dc.Certificate = d.cert
	case d.tpm != nil:
		dc.TPM = d.tpm
	case r.cfg.Attestation == SymmetricGroup:
		dc.GroupKey = r.groupKey
	default:
		dc.SymmetricKey = d.key
	}
	return dc
}

// registerTimed registers with dc, closes the connection, and returns the
// time since start.
func registerTimed(ctx context.Context, dc device.Config, start time.Time) (time.Duration, error) {
	if _, err := device.Register(ctx, dc); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
