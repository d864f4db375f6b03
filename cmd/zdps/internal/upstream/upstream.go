package upstream

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/ctxtime"
	"github.com/zdps/zdps/internal/gateway"
	"github.com/zdps/zdps/internal/gatewaykey"
	"github.com/zdps/zdps/internal/instance"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/device"
)

// Config is the edge side of edge gateways: zdps serve --upstream
// (internal/gateway).
type Config struct {
	Upstream       string
	UpstreamCAFile string
	IDScope        string
	RegistrationID string
	KeyFile        string
	CertFile       string
	CertKeyFile    string
	TPM            string
	SyncInterval   time.Duration

	// rt is what Start builds in gateway mode; a pointer, so that the
	// copies of serve's configuration handed around share it.
	rt *gatewayRuntime
}

// Register adds the --upstream flags to zdps serve's.
func (c *Config) Register(f *pflag.FlagSet) {
	f.StringVar(&c.Upstream, "upstream", "", "run as an edge gateway of the central zdps at this URL (https://host:port): provision at it, take enrollments from it, issue from a CA it delegates, push records and audit to it")
	f.StringVar(&c.UpstreamCAFile, "upstream-ca-file", "", "with --upstream: PEM file of the central zdps's CA bundle (its root), to verify it")
	f.StringVar(&c.IDScope, "upstream-id-scope", "", "with --upstream: the central zdps's ID scope (also this gateway's, unless --id-scope is given at first start)")
	f.StringVar(&c.RegistrationID, "upstream-registration-id", "", "with --upstream: this gateway's registration ID at central (an enrollment with capabilities.iotEdge and a site)")
	f.StringVar(&c.KeyFile, "upstream-key-file", "", "with --upstream: file of this gateway's symmetric key at central (base64, as in the enrollment)")
	f.StringVar(&c.CertFile, "upstream-cert", "", "with --upstream: this gateway's X.509 device certificate chain (PEM) at central, instead of a symmetric key")
	f.StringVar(&c.CertKeyFile, "upstream-key", "", "with --upstream-cert: its private key (PEM)")
	f.StringVar(&c.TPM, "upstream-tpm", "", "with --upstream: register at central with this gateway's TPM (the Azure TPM flow), instead of a key or certificate: a device path ("+device.DefaultTPMPath+") or unix:PATH (a simulator)")
	f.DurationVar(&c.SyncInterval, "sync-interval", gateway.DefaultInterval, "with --upstream: time between two syncs with central")
}

// On reports gateway mode: --upstream was given.
func (c *Config) On() bool { return c.Upstream != "" }

func (c *Config) check() error {
	switch {
	case c.UpstreamCAFile == "" || c.IDScope == "" || c.RegistrationID == "":
		return errors.New("--upstream needs --upstream-ca-file, --upstream-id-scope and --upstream-registration-id")
	case countSet(c.KeyFile, c.CertFile, c.TPM) != 1:
		return errors.New("--upstream needs one credential: --upstream-key-file, --upstream-cert with --upstream-key, or --upstream-tpm")
	case (c.CertFile == "") != (c.CertKeyFile == ""):
		return errors.New("--upstream-cert and --upstream-key go together")
	case c.SyncInterval < time.Second:
		return fmt.Errorf("--sync-interval %v: at least 1s", c.SyncInterval)
	}
	return nil
}

// Files of a gateway in its data directory: its TLS client certificate
// for central (the device certificate central issued it) and its key.
const (
	gatewayCertFile = "gateway-client.pem"
	gatewayKeyFile  = "gateway-client-key.pem"
)

// gatewayRuntime is a running gateway's link to central.
type gatewayRuntime struct {
	cfg    Config
	roots  *x509.CertPool
	client *gateway.Client
	cert   atomic.Pointer[tls.Certificate]
	opener atomic.Pointer[gatewaykey.Opener]
	m      *manage.Service
	dir    string
	log    *slog.Logger
}

// Start runs before the CA is opened: it makes sure the gateway has its
// client certificate for central and its delegated CA in the store (both
// need central reachable at the very first start only). An empty
// *idScope (serve's --id-scope) becomes central's.
func (g *Config) Start(ctx context.Context, dataDir string, idScope *string, caCfg ca.Config, log *slog.Logger) error {
	if err := g.check(); err != nil {
		return err
	}
	pemRoots, err := os.ReadFile(g.UpstreamCAFile)
	if err != nil {
		return fmt.Errorf("--upstream-ca-file: %w", err)
	}
	rt := &gatewayRuntime{cfg: *g, roots: x509.NewCertPool(), dir: dataDir, log: log.With("component", "gateway")}
	if !rt.roots.AppendCertsFromPEM(pemRoots) {
		return fmt.Errorf("--upstream-ca-file %s: no PEM certificate", g.UpstreamCAFile)
	}
	if rt.client, err = gateway.NewClient(g.Upstream, rt.roots, func() (*tls.Certificate, error) { return rt.cert.Load(), nil }); err != nil {
		return fmt.Errorf("--upstream: %w", err)
	}
	if *idScope == "" {
		*idScope = g.IDScope
	}
	if err := rt.loadOrProvision(ctx); err != nil {
		return err
	}
	if _, err := caCfg.Storage.Load(ctx); errors.Is(err, ca.ErrNoState) {
		if err := rt.delegate(ctx, caCfg); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	g.rt = rt
	return nil
}

// loadOrProvision loads the client certificate, or registers at central
// for one when there is none or it is past two thirds of its life.
func (rt *gatewayRuntime) loadOrProvision(ctx context.Context) error {
	c, err := tls.LoadX509KeyPair(filepath.Join(rt.dir, gatewayCertFile), filepath.Join(rt.dir, gatewayKeyFile))
	if err == nil && c.Leaf != nil && !pastTwoThirds(c.Leaf, time.Now()) {
		return rt.use(&c)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gateway client certificate: %w", err)
	}
	return rt.provision(ctx)
}

func (rt *gatewayRuntime) use(c *tls.Certificate) error {
	o, err := gatewaykey.NewOpener(c.PrivateKey)
	if err != nil {
		return fmt.Errorf("gateway client key: %w", err)
	}
	rt.cert.Store(c)
	rt.opener.Store(o)
	rt.client.CloseIdle()
	return nil
}

// provision registers the gateway at central as the device it is, with a
// CSR, and keeps the certificate it gets as its TLS client certificate.
func (rt *gatewayRuntime) provision(ctx context.Context) error {
	u := strings.TrimPrefix(rt.cfg.Upstream, "https://")
	dc := device.Config{Endpoint: strings.TrimSuffix(u, "/"), IDScope: rt.cfg.IDScope, RegistrationID: rt.cfg.RegistrationID,
		GenerateKey: true, RootCAs: rt.roots, MaxWait: time.Minute}
	if rt.cfg.KeyFile != "" {
		b, err := os.ReadFile(rt.cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("--upstream-key-file: %w", err)
		}
		if dc.SymmetricKey, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(b))); err != nil {
			return fmt.Errorf("--upstream-key-file %s: not base64: %w", rt.cfg.KeyFile, err)
		}
	} else if rt.cfg.TPM != "" {
		d, err := cmdutil.OpenTPM(rt.cfg.TPM)
		if err != nil {
			return fmt.Errorf("--upstream-tpm %s: %w", rt.cfg.TPM, err)
		}
		defer d.Close()
		dc.TPM = d
	} else {
		c, err := tls.LoadX509KeyPair(rt.cfg.CertFile, rt.cfg.CertKeyFile)
		if err != nil {
			return fmt.Errorf("--upstream-cert/--upstream-key: %w", err)
		}
		dc.Certificate = &c
	}
	res, err := device.Register(ctx, dc)
	if err != nil {
		return fmt.Errorf("gateway: register at central %s as %s: %w", rt.cfg.Upstream, rt.cfg.RegistrationID, err)
	}
	c, err := res.TLSCertificate()
	if err != nil {
		return fmt.Errorf("gateway: central issued no certificate: %w", err)
	}
	var certPEM []byte
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	if err := instance.WriteSecretFile(rt.dir, gatewayKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return err
	}
	if err := instance.WriteSecretFile(rt.dir, gatewayCertFile, certPEM); err != nil {
		return err
	}
	rt.log.Info("gateway registered at central", "upstream", rt.cfg.Upstream, "registration_id", rt.cfg.RegistrationID,
		"assigned_hub", res.AssignedHub, "not_after", c.Leaf.NotAfter)
	return rt.use(&c)
}

// delegate makes a new CA key and has central sign it: the delegated CA,
// stored for ca.New (first start) or replacing the current one (renewal).
func (rt *gatewayRuntime) delegate(ctx context.Context, caCfg ca.Config) error {
	// In the KMS of --ca-kms (the gateway's TPM) when given.
	key, ref, err := ca.NewDelegatedKey(ctx, caCfg, "zdps-gateway-ca")
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: rt.cfg.RegistrationID + " CA"}}, key)
	if err != nil {
		return err
	}
	chain, err := rt.client.DelegatedCA(ctx, csr)
	if err != nil {
		return fmt.Errorf("gateway: delegated CA: %w", err)
	}
	if err := ca.StoreDelegated(ctx, caCfg, chain, key, ref); err != nil {
		return fmt.Errorf("gateway: delegated CA: %w", err)
	}
	rt.log.Info("gateway delegated CA stored", "serial", fmt.Sprintf("%032x", chain[0].SerialNumber), "not_after", chain[0].NotAfter)
	return nil
}

// pastTwoThirds says a certificate should be renewed.
func pastTwoThirds(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return now.After(c.NotBefore.Add(life * 2 / 3))
}

// WireUseCases, in gateway mode, keeps the management use cases for the
// sync and refuses enrollment and group writes at the service API.
func (c *Config) WireUseCases(uc *api.UseCases, m *manage.Service) {
	if c.rt == nil {
		return
	}
	c.rt.m = m
	uc.Enrollments = gateway.ReadOnly(uc.Enrollments)
	uc.Groups = gateway.ReadOnly(uc.Groups)
}

// Run, in gateway mode, syncs with central and renews the client
// certificate and the delegated CA while online, until ctx ends.
func (c *Config) Run(ctx context.Context, st *store.Store, trail *audit.Log, authority *ca.CA, caCfg ca.Config) error {
	if c.rt == nil {
		return nil
	}
	return c.rt.run(ctx, st, trail, authority, caCfg)
}

func (rt *gatewayRuntime) run(ctx context.Context, st *store.Store, trail *audit.Log, authority *ca.CA, caCfg ca.Config) error {
	if rt.m == nil {
		return errors.New("gateway: management use cases not wired")
	}
	s, err := gateway.New(gateway.Config{
		Upstream: rt.client, Store: st,
		Enrollments: rt.m.IndividualEnrollments(), Groups: rt.m.EnrollmentGroups(), Resources: rt.m,
		Audit: trail, Opener: rt.opener.Load, CA: authority.Intermediate,
		Interval: rt.cfg.SyncInterval, Logger: rt.log,
	})
	if err != nil {
		return err
	}
	go s.Run(ctx)
	go rt.renew(ctx, authority, caCfg)
	return nil
}

// renew checks every sync interval (at most every minute) whether the
// client certificate or the delegated CA is past two thirds of its life,
// and renews it at central; offline, it tries again at the next check.
func (rt *gatewayRuntime) renew(ctx context.Context, authority *ca.CA, caCfg ca.Config) {
	ctxtime.Every(ctx, min(rt.cfg.SyncInterval, time.Minute), func() {
		rt.renewDue(ctx, authority, caCfg, time.Now())
	})
}

// renewDue renews what is past two thirds of its life at now; a failure
// is logged and retried at the next check.
func (rt *gatewayRuntime) renewDue(ctx context.Context, authority *ca.CA, caCfg ca.Config, now time.Time) {
	if c := rt.cert.Load(); c != nil && c.Leaf != nil && pastTwoThirds(c.Leaf, now) {
		if err := rt.provision(ctx); err != nil {
			rt.log.Warn("gateway client certificate renewal failed; retrying", "error", err)
		}
	}
	if pastTwoThirds(authority.Intermediate(), now) {
		if err := rt.delegate(ctx, caCfg); err != nil {
			rt.log.Warn("gateway delegated CA renewal failed; retrying", "error", err, "not_after", authority.Intermediate().NotAfter)
			return
		}
		if _, err := authority.Reload(ctx); err != nil {
			rt.log.Error("gateway: reload the renewed delegated CA", "error", err)
		}
	}
}

// Outbox wraps the store's backend in gateway mode so that every record
// written is pushed to central later (gateway.Outbox).
func (c *Config) Outbox(b store.Backend) store.Backend {
	if !c.On() {
		return b
	}
	return gateway.Outbox(b)
}

func countSet(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}
