package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/attestation/symmetric"
	x509v "github.com/zdps/zdps/attestation/x509"
	"github.com/zdps/zdps/cmd/zdps/internal/castorecmd"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/cmd/zdps/internal/secops"
	"github.com/zdps/zdps/cmd/zdps/internal/storeopen"
	"github.com/zdps/zdps/cmd/zdps/internal/upstream"
	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/deviceapi"
	"github.com/zdps/zdps/internal/instance"
	"github.com/zdps/zdps/internal/metrics"
	"github.com/zdps/zdps/internal/mqttapi"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/renewal"
	"github.com/zdps/zdps/internal/provisioning/symkey"
	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/provisioning/x509att"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/sites"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/sweep"
	"github.com/zdps/zdps/pkg/enrollment"
)

// serveConfig is the whole configuration of `zdps serve`.
type serveConfig struct {
	// DataDir, Store, KEKFile and KEKPassphrase: the store and its KEK.
	storeopen.Flags
	Listen       string
	HostName     string
	IDScope      string
	TLSCert      string
	TLSKey       string
	TLSSANs      []string
	LogLevel     string
	LogFormat    string
	MaxBodyBytes int64
	MaxBulkItems int
	MaxPageSize  int
	Shutdown     time.Duration
	IdleTimeout  time.Duration
	Azure202     bool
	RetryAfter   time.Duration
	// AssignWait bounds how long a register request waits for allocation
	// before answering 202 assigning (provisioning.Config.AssignWait).
	AssignWait   time.Duration
	CertValidity time.Duration
	// Revocation and CRL (docs/architecture.md#the-ca-and-revocation).
	RevokeOnDisable bool
	CRLURL          string
	CRLValidity     time.Duration
	// PruneInterval is how often expired operations and TPM challenges
	// are deleted; 0 never deletes them.
	PruneInterval time.Duration
	// TPMEKRoots is a PEM file of TPM manufacturer certificates; when set,
	// TPM devices must present an EK certificate that chains to them.
	TPMEKRoots string
	// TPMEKRequired, with TPMEKRoots, makes every TPM device present an EK
	// certificate; without it only enrollments that ask for one do.
	TPMEKRequired bool
	// CPUProfile is a file the CPU profile of the whole run is written to.
	CPUProfile string
	// Allocation configures the allocation policies (allocation.go).
	Allocation allocationConfig

	// MaxPayloadBytes and DeviceBodyTimeout bound device bodies
	// (deviceapi.Config).
	MaxPayloadBytes   int64
	DeviceBodyTimeout time.Duration
	// Limits are the device request rates (--throttle-*).
	Limits limits.Limits
	// MQTTListen is the MQTT/TLS listen address, "off" for none; MQTT
	// bounds its connections (mqttapi.Config).
	MQTTListen string
	MQTT       mqttapi.Config
	// Secops configures metrics, audit retention and export, and alert
	// responses (package secops).
	Secops secops.Config
	// CAKMS is the KMS URI holding the CA's intermediate and TLS keys
	// (zdps ca init --kms, package castorecmd); "" when they are sealed
	// in the store.
	CAKMS string
	// OIDC configures single sign-on and bearer tokens (oidc.go).
	OIDC oidcConfig
	// Console configures the web console's sessions (console.go).
	Console consoleConfig
	// Sites configures the central side of edge gateways (sites.go).
	Sites sitesConfig
	// Gateway configures the edge side: zdps serve --upstream (package upstream).
	Gateway upstream.Config
}

func newServeCmd() *cobra.Command {
	var cfg serveConfig
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the zdps server (service API and device API on one HTTPS listener)",
		Long: `Run the zdps server. On first start it creates, in the data directory, the
embedded store, a key-encryption key, the CA, the ID scope and the owner
policy, whose connection string it writes to service-connection-string (0600).

Every flag can also be set with an environment variable (ZDPS_ and the flag
name in upper snake case, e.g. ZDPS_DATA_DIR) or in a JSON config file given
with --config; flags win over the environment, which wins over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.ApplyEnvAndFile(cmd.Flags(), configFile); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			tuneGC()
			stopProfile, err := startCPUProfile(cfg.CPUProfile)
			if err != nil {
				return err
			}
			return errors.Join(serve(ctx, cfg, cmd.ErrOrStderr()), stopProfile())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "JSON config file (an object of flag names to values)")
	f.StringVar(&cfg.DataDir, "data-dir", "zdps-data", "data directory: store, key-encryption key, owner connection string, CA bundle")
	f.StringVar(&cfg.Store, "store", "", "where state lives: bolt (<data-dir>/zdps.db, the default), bolt:PATH, or postgres://user@host/db?schema=zdps shared by several replicas (which must all use the same KEK)")
	f.StringVar(&cfg.Listen, "listen", ":8443", "HTTPS listen address (devices expect 443 in production)")
	f.StringVar(&cfg.HostName, "hostname", "", "host[:port] clients use to reach this instance; put in connection strings and checked in service SAS tokens (default localhost:<listen port>)")
	f.StringVar(&cfg.IDScope, "id-scope", "", "ID scope to create on first start (default: generated 0ne + 8 hex; kept afterwards)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate chain PEM file (default: issued by the embedded CA)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key PEM file, with --tls-cert")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra DNS names or IPs for the issued TLS certificate")
	f.StringVar(&cfg.KEKFile, "kek-file", "", "file with the key-encryption key that seals the CA key and the device and policy keys at rest (hex, 32 bytes; default <data-dir>/kek, created on first start; keep it off the data volume in production)")
	f.StringVar(&cfg.KEKPassphrase, "kek-passphrase", "", "derive the key-encryption key from this passphrase (Argon2id, salt kept in the store) instead of a key file; prefer the environment variable")
	f.StringVar(&cfg.CAKMS, "ca-kms", "", "KMS URI of the CA's intermediate key and the TLS server key, as given to zdps ca init --kms (pkcs11:..., tpmkms:...); default: keys sealed in the store")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "text or json")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 16<<20, "largest request body accepted")
	f.Int64Var(&cfg.MaxPayloadBytes, "max-payload-bytes", deviceapi.DefaultMaxPayloadBytes, "largest payload (the device's custom allocation JSON) in a register body; larger ones answer 400 (Azure's whole device message limit is 96 KB); the device body limit grows to leave 16 KiB beside it for a CSR")
	f.DurationVar(&cfg.DeviceBodyTimeout, "device-body-timeout", deviceapi.DefaultBodyTimeout, "how long a device may take to send its request body; a stalled body answers 400 and the connection closes")
	f.IntVar(&cfg.MaxBulkItems, "max-bulk-items", 1000, "most items in one bulk call (Azure: 10)")
	f.IntVar(&cfg.MaxPageSize, "max-page-size", 1000, "most items in one query page")
	f.DurationVar(&cfg.Shutdown, "shutdown-timeout", 15*time.Second, "how long to let requests finish on SIGTERM")
	f.BoolVar(&cfg.Azure202, "azure-202", false, "answer register with 202 and let devices poll, exactly like Azure (default: 200 with the final result when it completes at once)")
	f.DurationVar(&cfg.RetryAfter, "retry-after", time.Second, "Retry-After sent with 202 answers (whole seconds, 1s to 300s)")
	f.DurationVar(&cfg.AssignWait, "assign-wait", 2*time.Second, "how long a register request waits for allocation (a custom webhook may be slow) and issuance before it answers 202 assigning and the registration completes in the background; devices then poll; 0 always waits")
	f.DurationVar(&cfg.CertValidity, "cert-validity", 365*24*time.Hour, "validity of operational certificates issued at registration")
	f.BoolVar(&cfg.RevokeOnDisable, "revoke-on-disable", true, "revoke a device's operational certificates when its registration record is deleted or its enrollment or group is deleted or disabled")
	f.StringVar(&cfg.CRLURL, "crl-url", "", "absolute http(s) URL of this instance's GET /crl, written as CRL distribution point into issued certificates (default: none)")
	f.DurationVar(&cfg.CRLValidity, "crl-validity", 24*time.Hour, "nextUpdate distance of the served CRL; it is re-signed when a quarter of it is left or the revoked set changes")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 5*time.Minute, "keep-alive idle timeout; must exceed any Retry-After sent (the C SDK keeps one connection)")
	f.StringVar(&cfg.MQTTListen, "mqtt-listen", ":8883", "MQTT 3.1.1 over TLS listen address for devices (same certificate as HTTPS), or off; MQTT over WebSockets is served on the HTTPS listener at "+mqttapi.WebSocketPath+" either way")
	f.IntVar(&cfg.MQTT.MaxPacketBytes, "mqtt-max-packet-bytes", mqttapi.DefaultMaxPacketBytes, "largest MQTT packet a device may send (Azure: 96 KB); a larger one closes the connection before it is read; the default grows with --max-payload-bytes, a value given must be at least --max-payload-bytes plus 16 KiB")
	f.IntVar(&cfg.MQTT.MaxConnections, "mqtt-max-connections", mqttapi.DefaultMaxConnections, "most open MQTT device connections (TLS and WebSocket together)")
	f.IntVar(&cfg.MQTT.MaxConnectionsPerIP, "mqtt-max-connections-per-ip", mqttapi.DefaultMaxConnectionsPerIP, "most open MQTT device connections from one source address")
	f.IntVar(&cfg.MQTT.MaxInFlight, "mqtt-max-in-flight", mqttapi.DefaultMaxInFlight, "requests of one MQTT connection running at once; its next packet is read when one ends")
	f.DurationVar(&cfg.MQTT.ConnectTimeout, "mqtt-connect-timeout", mqttapi.DefaultConnectTimeout, "time a device has for the TLS handshake and its CONNECT")
	f.DurationVar(&cfg.MQTT.IdleTimeout, "mqtt-idle-timeout", mqttapi.DefaultIdleTimeout, "an MQTT connection with no request running is closed this long after its last answer; must exceed --retry-after")
	cfg.Allocation.register(f)
	cfg.Secops.Register(f)
	cfg.OIDC.register(f)
	cfg.Console.register(f)
	cfg.Sites.register(f)
	cfg.Gateway.Register(f)
	cfg.Limits = limits.DefaultLimits()
	f.Var(&cfg.Limits.Poll, "throttle-poll", "operation polls and status lookups admitted per device, COUNT/DURATION or off (Azure: 5/10s); a throttled poll of a registration still assigning answers 202 with a later Retry-After, otherwise 429")
	f.Var(&cfg.Limits.Register, "throttle-register", "register requests admitted per device, COUNT/DURATION or off; counted only after the device authenticated")
	f.Var(&cfg.Limits.GroupRegister, "throttle-group-register", "register requests admitted per enrollment group, over all its devices, COUNT/DURATION or off")
	f.Var(&cfg.Limits.InstanceRegister, "throttle-instance-register", "register requests admitted by this replica, COUNT/DURATION or off (counters are per replica)")
	f.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the server to this file until it stops (for go tool pprof)")
	f.DurationVar(&cfg.PruneInterval, "prune-interval", sweep.DefaultInterval, "how often expired register operations, TPM challenges and certificates (one --crl-validity after they expired) are deleted from the store (every replica may; 0 never deletes them)")
	f.StringVar(&cfg.TPMEKRoots, "tpm-ek-roots", "", "PEM file of TPM manufacturer root (and intermediate) certificates that EK certificates must chain to (the device's payload tpmEkCertificate, base64 DER, else the enrollment's endorsementKeyCertificate)")
	f.BoolVar(&cfg.TPMEKRequired, "tpm-ek-required", true, "with --tpm-ek-roots: every TPM device needs an EK certificate; false checks only the certificates supplied and the enrollments with requireEndorsementKeyCertificate")
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}

func serve(ctx context.Context, cfg serveConfig, logw io.Writer) error {
	log, err := newLogger(logw, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", cfg.Listen, err)
	}
	if cfg.HostName == "" {
		cfg.HostName = net.JoinHostPort("localhost", port)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.PruneInterval < 0 {
		return fmt.Errorf("--prune-interval %v: must not be negative (0 disables pruning)", cfg.PruneInterval)
	}
	sso, err := newSSO(ctx, cfg.OIDC, cfg.HostName, log)
	if err != nil {
		return err
	}
	// Metrics come first: the allocator and the store report to them.
	m := metrics.New()
	allocator, webhooks, err := newAllocator(cfg.Allocation, log, m.Webhook)
	if err != nil {
		return err
	}
	spec, backend, err := cfg.Open(ctx, true)
	if err != nil {
		return err
	}
	defer backend.Close()
	log.Info("store opened", "store", spec.String())

	kek, err := cfg.KEK(ctx, backend)
	if err != nil {
		return err
	}
	caCfg := ca.Config{Storage: ca.BackendStorage(backend), KEK: kek, Logger: log, CRLURL: cfg.CRLURL}
	if cfg.CAKMS != "" {
		keys, err := storeopen.OpenKMS(ctx, cfg.CAKMS, cfg.DataDir)
		if err != nil {
			return fmt.Errorf("--ca-kms: %w", err)
		}
		defer keys.Close()
		caCfg.KMS = keys
	}
	if cfg.Gateway.On() {
		// An edge gateway: its client certificate and delegated CA from
		// central before the CA opens.
		if err := cfg.Gateway.Start(ctx, cfg.DataDir, &cfg.IDScope, caCfg, log); err != nil {
			return err
		}
	}
	authority, err := ca.New(ctx, caCfg)
	if err != nil {
		if errors.Is(err, ca.ErrBadKEK) {
			// Replicas sharing a store share its CA: they need one KEK.
			return fmt.Errorf("CA in store %s: %w (every zdps using this store needs the same key-encryption key: the same --kek-file or the same --kek-passphrase)", spec, err)
		}
		return fmt.Errorf("CA: %w", err)
	}
	// The CA has just proved the KEK right for this store; device and
	// policy keys are sealed under a subkey of it.
	secrets, err := sealed.New(kek)
	if err != nil {
		return err
	}
	if pg, ok := backend.(interface{ Retries() int64 }); ok {
		m.StoreRetries(pg.Retries)
	}
	if pg, ok := backend.(interface {
		RoundTrips() int64
		Statements() int64
		Conflicts() int64
	}); ok {
		m.StoreCounters(pg.RoundTrips, pg.Statements, pg.Conflicts)
	}
	m.RevokedCertificates(func(ctx context.Context) (int, error) { return revocation.CountRevoked(ctx, backend) })
	so, err := secops.New(cfg.Secops, backend, kek, m, log)
	if err != nil {
		return err
	}
	st := store.New(so.Metrics.Backend(cfg.Gateway.Outbox(backend)), nil, store.WithSealer(secrets))
	// Management writes are audit events and feed the edge gateways'
	// change feeds, each in its own transaction.
	audited := store.New(audit.Changes(sites.Feed(st.Backend), so.Trail), nil, store.WithSealer(secrets))
	if err := st.SealSecrets(ctx, log, 0); err != nil {
		return err
	}
	inst, err := instance.Bootstrap(ctx, st, instance.Config{HostName: cfg.HostName, IDScope: cfg.IDScope})
	if err != nil {
		return err
	}
	if err := instance.WriteSecretFile(cfg.DataDir, instance.ConnectionStringFile, []byte(inst.ConnectionString+"\n")); err != nil {
		return fmt.Errorf("write connection string: %w", err)
	}
	if err := instance.WriteSecretFile(cfg.DataDir, cmdutil.CABundleFile, authority.BundlePEM()); err != nil {
		return fmt.Errorf("write CA bundle: %w", err)
	}
	// zdps ca rotate rewrites the CA state: follow it (package castorecmd).
	go authority.Watch(ctx, castorecmd.ReloadInterval, func() {
		if err := instance.WriteSecretFile(cfg.DataDir, cmdutil.CABundleFile, authority.BundlePEM()); err != nil {
			log.Error("write CA bundle after rotation", "err", err)
		}
		so.Metrics.CertificateExpiry("root", authority.Root().NotAfter)
		so.Metrics.CertificateExpiry("intermediate", authority.Intermediate().NotAfter)
	})

	certs, err := newCertSource(cfg, authority, log)
	if err != nil {
		return err
	}
	// Built before the service API, which checks TPM enrollments' EK
	// certificates with it when they are written.
	tpmAtt, err := newTPMAttestor(st, cfg.TPMEKRoots, cfg.TPMEKRequired)
	if err != nil {
		return err
	}
	service, rev, err := newServiceAPI(cfg, st, audited, authority, webhooks, tpmAtt, so, sso.Bearer(), log)
	if err != nil {
		return err
	}
	gw, err := newGatewayAPI(cfg, service, audited, authority, rev, so.Trail, log)
	if err != nil {
		return err
	}
	// Finishes revocation sweeps of large groups (and any a previous
	// process left); it stops with ctx at shutdown.
	go func() { _ = rev.Run(ctx, 0) }()
	prov, dev, pruners, err := mountDeviceAPI(service, st, authority, inst, allocator, tpmAtt, so, cfg, log)
	if err != nil {
		return err
	}
	if pruners["site feeds"], err = sites.NewPruner(backend, cfg.Sites.Retention); err != nil {
		return err
	}
	postureSettings := posture.Settings{RevokeOnDisable: cfg.RevokeOnDisable,
		WebhookSecret: cfg.Allocation.hasSecret(), MetricsOpen: cfg.Secops.MetricsOpen(), KEKBesideStore: cfg.KEKPassphrase == "" && cfg.KEKFile == ""}
	ops, err := so.OpsAPI(service, st, authority, postureSettings)
	if err != nil {
		return err
	}
	cons, err := newConsole(cfg.Console, service, st, so, authority, prov, postureSettings, sso.Web(), log)
	if err != nil {
		return err
	}
	pruners["console-sessions"] = cons
	go func() { _ = cons.Warm(ctx) }()
	if err := so.Start(ctx, authority); err != nil {
		return err
	}
	if err := cfg.Gateway.Run(ctx, st, so.Trail.Log, authority, caCfg); err != nil {
		return err
	}
	// Deletes operations and TPM challenges nobody can read any more; it
	// stops with ctx at shutdown.
	if cfg.PruneInterval > 0 {
		go func() { _ = sweep.Run(ctx, log, cfg.PruneInterval, nil, pruners) }()
	}

	tlsConfig := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.get,
		// Devices authenticating with X.509 present a client certificate;
		// it is verified in application code against enrollments.
		ClientAuth: tls.RequestClientCert,
	}
	mq, err := newMQTT(cfg, prov, inst.Settings.IDScope, tlsConfig, m.MQTTConnections, log)
	if err != nil {
		return err
	}
	var mqttLn net.Listener
	mqttAddr := "off"
	if cfg.MQTTListen != "off" {
		if mqttLn, err = net.Listen("tcp", cfg.MQTTListen); err != nil {
			return fmt.Errorf("--mqtt-listen: %w", err)
		}
		mqttAddr = mqttLn.Addr().String()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           rootRouter(service, dev, mq, ops, cons, gw, sso),
		ConnContext:       deviceapi.ConnContext, // the device's measured round trip (geoLatency)
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
	}
	log.Info("zdps listening", "addr", ln.Addr().String(), "mqtt_addr", mqttAddr, "hostname", cfg.HostName,
		"id_scope", inst.Settings.IDScope, "data_dir", cfg.DataDir,
		"connection_string_file", filepath.Join(cfg.DataDir, instance.ConnectionStringFile))

	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	if mqttLn != nil {
		go func() { errc <- mq.Serve(ctx, mqttLn) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	// MQTT connections (WebSocket ones too: Shutdown leaves hijacked
	// connections alone) end now; a device reconnects elsewhere.
	if err := mq.Close(sctx); err != nil {
		log.Warn("MQTT connections still open at shutdown", "error", err)
	}
	if shutdownErr != nil {
		// Past the deadline, cut what is left (a backup still streaming
		// to a slow client holds a read transaction that would keep
		// the store from closing).
		_ = srv.Close()
	}
	// Registrations answered 202 finish in the background: let them store
	// their outcome. One cut short answers failed after its deadline and
	// the device registers again.
	if err := prov.Wait(sctx); err != nil {
		log.Warn("registrations still running in the background at shutdown", "error", err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	return nil
}

// certSource serves the TLS certificate: the operator's files, or one issued
// by the embedded CA and re-issued when a third of its validity is left, so a
// long-running server never presents an expired certificate.
type certSource struct {
	// cert is read without a lock by every TLS handshake; mu serialises
	// re-issuing it.
	cert      atomic.Pointer[tls.Certificate]
	mu        sync.Mutex
	authority *ca.CA
	hosts     []string
	log       *slog.Logger
}

const serverCertValidity = 90 * 24 * time.Hour

func newCertSource(cfg serveConfig, authority *ca.CA, log *slog.Logger) (*certSource, error) {
	if cfg.TLSCert != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		s := &certSource{}
		s.cert.Store(&c)
		return s, nil
	}
	host, _, err := net.SplitHostPort(cfg.HostName)
	if err != nil {
		host = cfg.HostName
	}
	s := &certSource{authority: authority, log: log}
	for _, h := range append([]string{host, "localhost", "127.0.0.1", "::1"}, cfg.TLSSANs...) {
		if !slices.Contains(s.hosts, h) {
			s.hosts = append(s.hosts, h)
		}
	}
	if _, err := s.get(nil); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *certSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	// Every handshake asks: no lock while the certificate is fresh.
	if cur, ok := s.fresh(); ok {
		return cur, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.fresh()
	if ok {
		return cur, nil
	}
	c, err := s.authority.ServerCertificate(s.hosts, serverCertValidity)
	if err != nil {
		if cur != nil {
			s.log.Error("re-issuing the server certificate failed; keeping the current one", "err", err)
			return cur, nil
		}
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	s.cert.Store(&c)
	return &c, nil
}

// fresh returns the current certificate and whether it can be served as
// it is (an operator's certificate always can).
func (s *certSource) fresh() (*tls.Certificate, bool) {
	cur := s.cert.Load()
	if s.authority == nil {
		return cur, true
	}
	if cur == nil {
		return nil, false
	}
	// A third of its own life left: an edge gateway's certificate is
	// capped by its delegated CA's short validity, not serverCertValidity.
	life := cur.Leaf.NotAfter.Sub(cur.Leaf.NotBefore)
	return cur, time.Until(cur.Leaf.NotAfter) > life/3
}

// mountDeviceAPI wires the registration pipeline (attestors, allocation
// policy, CA) and the device API for rootRouter, and lets the service API
// explain allocations with the pipeline. It returns the pipeline, the
// device API and what prunes expired records, by record kind.
func mountDeviceAPI(service *api.API, st *store.Store, authority *ca.CA, inst *instance.Instance, allocator *allocation.Registry, tpmAtt *tpmatt.Attestor, so *secops.Parts, cfg serveConfig, log *slog.Logger) (*provisioning.Service, *deviceapi.API, map[string]sweep.Pruner, error) {
	issuer, err := caissuer.New(authority)
	if err != nil {
		return nil, nil, nil, err
	}
	symAtt, err := symkey.NewAttestor(st, symmetric.Config{})
	if err != nil {
		return nil, nil, nil, err
	}
	// X.509: the listener requests (never verifies) client certificates;
	// the chain reaches the attestor through Request.ClientCertificates.
	walk, err := x509att.NewAttestor(st, x509v.Config{})
	if err != nil {
		return nil, nil, nil, err
	}
	// A leaf issued by zdps's own CA is a renewal (the enrollment is its
	// registration record); any other chain walks the X.509 enrollments.
	x509Att, err := renewal.New(renewal.Config{Store: st, CA: authority, Walk: walk})
	if err != nil {
		return nil, nil, nil, err
	}
	// The webhook's worst case bounds a registration: within the register
	// request when --assign-wait is 0, else in the background.
	budget := cfg.Allocation.webhookBudget()
	switch {
	case cfg.AssignWait < 0 || cfg.AssignWait > maxWebhookBudget:
		return nil, nil, nil, fmt.Errorf("--assign-wait %v: 0 to %v, the time a register request may take", cfg.AssignWait, maxWebhookBudget)
	case cfg.AssignWait == 0 && budget > maxWebhookBudget:
		return nil, nil, nil, fmt.Errorf("--allocation-webhook-timeout × (retries+1) plus backoff is %v; with --assign-wait 0 keep it under %v, the time a register request may take", budget, maxWebhookBudget)
	}
	prov, err := provisioning.New(provisioning.Config{
		Store: st,
		Attestors: map[string]port.Attestor{
			enrollment.AttestationSymmetricKey: symAtt,
			enrollment.AttestationX509:         x509Att,
			enrollment.AttestationTPM:          tpmAtt,
		},
		Allocator:           allocator,
		Issuer:              issuer,
		Logger:              log,
		CertificateValidity: cfg.CertValidity,
		AssignWait:          cfg.AssignWait,
		AssignTimeout:       budget + assignMargin,
		Limits:              cfg.Limits,
		Audit:               so.Trail,
		Observer:            so.Metrics,
		SourceBlocked:       so.Blocks.Blocked,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.MaxPayloadBytes <= 0 || cfg.DeviceBodyTimeout <= 0 {
		return nil, nil, nil, fmt.Errorf("--max-payload-bytes %d and --device-body-timeout %v must be positive", cfg.MaxPayloadBytes, cfg.DeviceBodyTimeout)
	}
	dev, err := deviceapi.New(deviceapi.Config{
		Provisioner:        prov,
		IDScope:            inst.Settings.IDScope,
		Logger:             log,
		IdleTimeout:        cfg.IdleTimeout,
		AzureCompatible202: cfg.Azure202,
		RetryAfter:         cfg.RetryAfter,
		MaxPayloadBytes:    cfg.MaxPayloadBytes,
		BodyTimeout:        cfg.DeviceBodyTimeout,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	// The service API's limit applies first: it must not refuse a device
	// body the device API accepts.
	if cfg.MaxBodyBytes < dev.MaxBodyBytes() {
		return nil, nil, nil, fmt.Errorf("--max-body-bytes %d is below the device body limit %d (--max-payload-bytes %d plus %d for a CSR)", cfg.MaxBodyBytes, dev.MaxBodyBytes(), cfg.MaxPayloadBytes, deviceapi.BodyRoom)
	}
	service.SetExplainer(prov)
	// An expired certificate's record stays one CRL validity, so that a
	// revoked one appears on a CRL signed after it expired.
	certPruner, err := revocation.NewCertificatePruner(st.Backend, crlValidity(cfg))
	if err != nil {
		return nil, nil, nil, err
	}
	return prov, dev, map[string]sweep.Pruner{"operations": prov, "tpm-challenges": tpmAtt, "certificates": certPruner}, nil
}

// newMQTT builds the MQTT device endpoint on the pipeline, with the
// device API's answer settings.
func newMQTT(cfg serveConfig, prov *provisioning.Service, idScope string, tlsConfig *tls.Config, onConn func(int), log *slog.Logger) (*mqttapi.Server, error) {
	mc := cfg.MQTT
	if mc.MaxPacketBytes == mqttapi.DefaultMaxPacketBytes {
		// The default grows with --max-payload-bytes, as the HTTPS body
		// limit does.
		mc.MaxPacketBytes = 0
	}
	mc.Provisioner = prov
	mc.IDScope = idScope
	mc.Logger = log
	mc.TLS = tlsConfig
	mc.MaxPayloadBytes = cfg.MaxPayloadBytes
	mc.AzureCompatible202 = cfg.Azure202
	mc.RetryAfter = cfg.RetryAfter
	mc.OnConnection = onConn
	return mqttapi.New(mc)
}

// assignMargin is what a registration running in the background may take
// beyond the allocation webhook's worst case: issuing and the store write.
const assignMargin = 10 * time.Second
