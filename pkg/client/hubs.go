package client

import (
	"context"
	"iter"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

var hubs = resource[enrollment.Hub]{base: "/hubs", noun: "hub", idField: "name", id: func(h *enrollment.Hub) string { return h.Name }}

// ListHubs returns one page of linked hubs and the next continuation.
func (c *Client) ListHubs(ctx context.Context, pageSize int, continuation string) ([]*enrollment.Hub, string, error) {
	return page[*enrollment.Hub](ctx, c, http.MethodGet, "/hubs", nil, pageSize, continuation)
}

// Hubs iterates over every linked hub.
func (c *Client) Hubs(ctx context.Context, pageSize int) iter.Seq2[*enrollment.Hub, error] {
	return each(ctx, pageSize, c.ListHubs)
}

// GetHub returns the linked hub name.
func (c *Client) GetHub(ctx context.Context, name string) (*enrollment.Hub, error) {
	return hubs.get(ctx, c, name)
}

// PutHub creates or replaces h, conditionally on ifMatchETag when set.
func (c *Client) PutHub(ctx context.Context, h *enrollment.Hub, ifMatchETag string) (*enrollment.Hub, error) {
	return hubs.put(ctx, c, h, ifMatch(ifMatchETag))
}

// DeleteHub unlinks the hub name, conditionally on ifMatchETag when set.
func (c *Client) DeleteHub(ctx context.Context, name, ifMatchETag string) error {
	return hubs.delete(ctx, c, name, ifMatchETag)
}

// CreateHub links h only if no hub of that name is linked yet (If-None-Match:
// *): it fails with ErrConflict rather than replace a hub another operator
// created.
func (c *Client) CreateHub(ctx context.Context, h *enrollment.Hub) (*enrollment.Hub, error) {
	return hubs.put(ctx, c, h, createOnly())
}
