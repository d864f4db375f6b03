package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/custom"
	"github.com/zdps/zdps/allocation/geolatency"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/allocation/static"
	"github.com/zdps/zdps/pkg/enrollment"
)

// maxWebhookBudget bounds the time a register request may take (the
// server's write timeout is 60 s): all webhook attempts when --assign-wait
// is 0, else --assign-wait itself (serve.go checks both).
const maxWebhookBudget = 50 * time.Second

// allocationConfig configures the allocation policies of `zdps serve`.
type allocationConfig struct {
	WebhookTimeout    time.Duration
	WebhookRetries    int
	WebhookSecret     string
	WebhookSecretFile string
	WebhookAllowCIDRs []string
	GeoNetworks       []string
	GeoRegions        []string
	GeoLocalRegion    string
	GeoLocalRTT       time.Duration
}

func (c *allocationConfig) register(f *pflag.FlagSet) {
	f.DurationVar(&c.WebhookTimeout, "allocation-webhook-timeout", custom.DefaultTimeout, "timeout of one call of a custom allocation webhook")
	f.IntVar(&c.WebhookRetries, "allocation-webhook-retries", custom.DefaultRetries, fmt.Sprintf("retries of a custom allocation webhook after a timeout, transport error, 429 or 5xx (0 to %d)", custom.MaxRetries))
	f.StringVar(&c.WebhookSecret, "allocation-webhook-secret", "", "sign custom allocation webhook requests with HMAC-SHA256 under this secret (header "+custom.HeaderSignature+"); prefer the environment variable or --allocation-webhook-secret-file")
	f.StringVar(&c.WebhookSecretFile, "allocation-webhook-secret-file", "", "file holding the webhook signing secret")
	f.StringSliceVar(&c.WebhookAllowCIDRs, "allocation-webhook-allow-cidr", nil, "networks a webhook may be reached at although they are refused by default (link-local, cloud metadata), e.g. 169.254.10.0/24")
	f.StringArrayVar(&c.GeoNetworks, "geo-network", nil, "geoLatency: a device source network and its region, CIDR=REGION (repeatable)")
	f.StringArrayVar(&c.GeoRegions, "geo-region", nil, "geoLatency: coordinates of a region, NAME=LAT,LON (repeatable)")
	f.StringVar(&c.GeoLocalRegion, "geo-local-region", "", "geoLatency: the region this instance runs in; a device whose measured round trip is within --geo-local-rtt is placed there")
	f.DurationVar(&c.GeoLocalRTT, "geo-local-rtt", geolatency.DefaultLocalRTT, "geoLatency: the measured round trip (TCP RTT of the device's connection) within which a device is in --geo-local-region")
}

// webhookBudget is the longest all attempts of a custom allocation webhook
// may take: every attempt timing out, plus the backoff between them.
func (c allocationConfig) webhookBudget() time.Duration {
	return c.WebhookTimeout*time.Duration(c.WebhookRetries+1) + custom.DefaultRetryBackoff*(1<<c.WebhookRetries)
}

// newAllocator builds the allocation engine with every policy, wired
// explicitly, and returns the custom policy too: the service API checks
// webhook URLs with it when enrollments are written.
func newAllocator(c allocationConfig, log *slog.Logger, onCall func(time.Duration, error)) (*allocation.Registry, *custom.Policy, error) {
	if c.WebhookRetries < 0 || c.WebhookRetries > custom.MaxRetries {
		return nil, nil, fmt.Errorf("--allocation-webhook-retries: 0 to %d, not %d", custom.MaxRetries, c.WebhookRetries)
	}
	if c.WebhookTimeout <= 0 {
		return nil, nil, fmt.Errorf("--allocation-webhook-timeout must be positive")
	}
	secret := c.WebhookSecret
	if c.WebhookSecretFile != "" {
		if secret != "" {
			return nil, nil, fmt.Errorf("--allocation-webhook-secret and --allocation-webhook-secret-file exclude each other")
		}
		b, err := os.ReadFile(c.WebhookSecretFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--allocation-webhook-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	var allow []netip.Prefix
	for _, s := range c.WebhookAllowCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, nil, fmt.Errorf("--allocation-webhook-allow-cidr %q: %w", s, err)
		}
		allow = append(allow, p)
	}
	retries := c.WebhookRetries
	if retries == 0 {
		retries = -1 // custom.Config: negative means none
	}
	cp, err := custom.New(custom.Config{Timeout: c.WebhookTimeout, Retries: retries, Secret: []byte(secret), AllowNetworks: allow, Logger: log, OnCall: onCall})
	if err != nil {
		return nil, nil, err
	}
	geo := geolatency.Config{Networks: map[netip.Prefix]string{}, Regions: map[string]geolatency.Point{}, LocalRegion: c.GeoLocalRegion}
	if c.GeoLocalRegion != "" {
		geo.LocalRTT = c.GeoLocalRTT
	}
	for _, s := range c.GeoNetworks {
		p, region, err := geolatency.ParseNetwork(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--geo-network: %w", err)
		}
		geo.Networks[p] = region
	}
	for _, s := range c.GeoRegions {
		name, pt, err := geolatency.ParseRegion(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--geo-region: %w", err)
		}
		geo.Regions[name] = pt
	}
	gp, err := geolatency.New(geo)
	if err != nil {
		return nil, nil, err
	}
	reg, err := allocation.NewRegistry(map[string]allocation.Policy{
		enrollment.PolicyHashed:     hashed.New(),
		enrollment.PolicyStatic:     static.New(),
		enrollment.PolicyGeoLatency: gp,
		enrollment.PolicyCustom:     cp,
	})
	return reg, cp, err
}

// hasSecret: custom allocation webhooks are signed.
func (c allocationConfig) hasSecret() bool { return c.WebhookSecret != "" || c.WebhookSecretFile != "" }
