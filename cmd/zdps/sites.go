package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/gatewayapi"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/sites"
	"github.com/zdps/zdps/internal/store"
)

// sitesConfig is the central side of edge gateways (internal/sites).
type sitesConfig struct {
	// SiteCAValidity is the life of a delegated site CA.
	SiteCAValidity time.Duration
	// Retention is how long the feeds' entries are kept.
	Retention time.Duration
}

func (c *sitesConfig) register(f *pflag.FlagSet) {
	f.DurationVar(&c.SiteCAValidity, "site-ca-validity", ca.DefaultSiteCAValidity, "validity of the delegated CA an edge gateway gets from POST /gateway/v1/ca (at most 90 days, never past the intermediate); gateways renew it while online")
	f.DurationVar(&c.Retention, "site-feed-retention", sites.DefaultRetention, "how long the change feed of each edge site keeps its entries (pruned every --prune-interval); a gateway offline for longer takes a new snapshot")
}

func (c *sitesConfig) check() error {
	if c.SiteCAValidity < time.Hour || c.SiteCAValidity > ca.MaxSiteCAValidity {
		return fmt.Errorf("--site-ca-validity: %v is not from 1h to %v", c.SiteCAValidity, ca.MaxSiteCAValidity)
	}
	if c.Retention < time.Hour {
		return fmt.Errorf("--site-feed-retention: %v is less than 1h", c.Retention)
	}
	return nil
}

// newGatewayAPI builds the sites resource and the gateway API over the
// audited store (whose backend is wrapped by sites.Feed), the CA and
// revocation.
func newGatewayAPI(cfg serveConfig, service *api.API, audited *store.Store, authority *ca.CA, rev *revocation.Revocations, trail sites.Recorder, log *slog.Logger) (*gatewayapi.API, error) {
	if err := cfg.Sites.check(); err != nil {
		return nil, err
	}
	uc, err := sites.New(sites.Config{
		Store: audited, Recorder: trail, Revoker: rev, CA: siteCA{authority},
		SiteCAValidity: cfg.Sites.SiteCAValidity, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return gatewayapi.New(gatewayapi.Config{Host: service, UseCases: uc, MaxPageSize: cfg.MaxPageSize, Logger: log})
}

// siteCA adapts the CA to the signer internal/sites asks for.
type siteCA struct{ ca *ca.CA }

func (s siteCA) SignSiteCA(csrDER []byte, site, gateway string, validity time.Duration) ([][]byte, string, time.Time, error) {
	is, err := s.ca.SignSiteCA(csrDER, ca.SiteCAPolicy{Site: site, Gateway: gateway, Validity: validity})
	switch {
	case errors.Is(err, ca.ErrCSRMalformed), errors.Is(err, ca.ErrCSRSignature), errors.Is(err, ca.ErrCSRKey):
		return nil, "", time.Time{}, fmt.Errorf("%w: %w", sites.ErrInvalid, err)
	case errors.Is(err, ca.ErrCannotDelegate):
		return nil, "", time.Time{}, fmt.Errorf("%w: %w", sites.ErrCannotDelegate, err)
	case err != nil:
		return nil, "", time.Time{}, err
	}
	return is.Chain, is.Serial, is.Certificate.NotAfter, nil
}
