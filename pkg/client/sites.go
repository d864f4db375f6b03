package client

import (
	"context"
	"iter"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

var sites = resource[enrollment.Site]{base: "/sites", noun: "site", idField: "name",
	id: func(s *enrollment.Site) string { return s.Name }, body: func(s *enrollment.Site) any { return siteBody(s) }}

// The sites of edge gateways (zdps extension, docs/protocol.md#sites).

// ListSites returns one page of sites, each with its gateways' last
// reports, and the next continuation.
func (c *Client) ListSites(ctx context.Context, pageSize int, continuation string) ([]*enrollment.Site, string, error) {
	return page[*enrollment.Site](ctx, c, http.MethodGet, "/sites", nil, pageSize, continuation)
}

// Sites iterates over every site.
func (c *Client) Sites(ctx context.Context, pageSize int) iter.Seq2[*enrollment.Site, error] {
	return each(ctx, pageSize, c.ListSites)
}

// GetSite returns the site name with its gateways' last reports.
func (c *Client) GetSite(ctx context.Context, name string) (*enrollment.Site, error) {
	return sites.get(ctx, c, name)
}

// PutSite creates or replaces s, conditionally on ifMatchETag when set.
func (c *Client) PutSite(ctx context.Context, s *enrollment.Site, ifMatchETag string) (*enrollment.Site, error) {
	return sites.put(ctx, c, s, ifMatch(ifMatchETag))
}

// CreateSite creates s only if no site of that name exists (ErrConflict
// otherwise).
func (c *Client) CreateSite(ctx context.Context, s *enrollment.Site) (*enrollment.Site, error) {
	return sites.put(ctx, c, s, createOnly())
}

// DeleteSite deletes the site name, conditionally on ifMatchETag when set.
// Its gateways are refused from then on.
func (c *Client) DeleteSite(ctx context.Context, name, ifMatchETag string) error {
	return sites.delete(ctx, c, name, ifMatchETag)
}

// siteBody is what a write sends: the read-only fields left out.
func siteBody(s *enrollment.Site) *enrollment.Site {
	hubs := s.Hubs
	if hubs == nil {
		hubs = []string{}
	}
	return &enrollment.Site{Name: s.Name, Hubs: hubs}
}
