package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/zdps/zdps/cmd/zdps/internal/secops"
	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/console"
	"github.com/zdps/zdps/internal/posture"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
)

// consoleConfig configures the operator web console (/console).
type consoleConfig struct {
	IdleTimeout time.Duration
	MaxAge      time.Duration
	LinkTTL     time.Duration
}

func (c *consoleConfig) register(f *pflag.FlagSet) {
	f.DurationVar(&c.IdleTimeout, "console-idle-timeout", console.DefaultIdleTimeout, "a web console session unused this long ends")
	f.DurationVar(&c.MaxAge, "console-session-max-age", console.DefaultMaxAge, "a web console session ends this long after sign-in, used or not")
	f.DurationVar(&c.LinkTTL, "console-link-ttl", console.DefaultLinkTTL, "how long a one-time sign-in link of `zdps console link` stays usable")
}

// newConsole builds the web console over the use cases the service API
// runs (one code path for every write) and the security operations parts.
// Sessions and links are kept in st's backend, which every replica shares.
func newConsole(cfg consoleConfig, service *api.API, st *store.Store, so *secops.Parts, authority *ca.CA, prov *provisioning.Service, settings posture.Settings, sso console.SSO, log *slog.Logger) (*console.Console, error) {
	uc := service.UseCases()
	src := posture.NewStoreSource(st)
	return console.New(console.Config{
		Backend: st.Backend, Store: st,
		Enrollments: uc.Enrollments, Groups: uc.Groups, Registrations: uc.Registrations, Hubs: uc.Resources, Certificates: uc.Certificates,
		KeyReads: so.Trail, Trail: so.Trail.Log, Alerts: so.Alerts,
		Posture: func(ctx context.Context) (*posture.Report, error) {
			return posture.Compute(ctx, src, posture.Options{CA: []*x509.Certificate{authority.Intermediate(), authority.Root()}, Settings: settings})
		},
		CA: authority,
		Explain: func(ctx context.Context, req dps.ExplainRequest) (*dps.Explanation, error) {
			return prov.Explain(ctx, provisioning.ExplainRequest{RegistrationID: req.RegistrationID, EnrollmentGroupID: req.EnrollmentGroupID,
				Payload: req.Payload, SourceAddr: req.SourceAddress})
		},
		Host:        service,
		SSO:         sso,
		Logger:      log,
		IdleTimeout: cfg.IdleTimeout, MaxAge: cfg.MaxAge, LinkTTL: cfg.LinkTTL,
	})
}
