package client

import (
	"context"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

// GetSettings returns the instance settings (ID scope, default allocation
// policy).
func (c *Client) GetSettings(ctx context.Context) (*enrollment.Settings, error) {
	var s enrollment.Settings
	if err := c.do(ctx, request{method: http.MethodGet, path: "/settings", out: &s}); err != nil {
		return nil, err
	}
	return &s, nil
}

// PutSettings replaces the instance settings, conditionally on ifMatchETag.
func (c *Client) PutSettings(ctx context.Context, s *enrollment.Settings, ifMatchETag string) (*enrollment.Settings, error) {
	var out enrollment.Settings
	if err := c.do(ctx, request{method: http.MethodPut, path: "/settings", body: s, header: ifMatch(ifMatchETag), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
