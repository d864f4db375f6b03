package client

import (
	"context"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

// GetSettings returns the instance settings (ID scope, default allocation
// policy).
func (c *Client) GetSettings(ctx context.Context) (*enrollment.Settings, error) {
	return call[enrollment.Settings](ctx, c, request{method: http.MethodGet, path: "/settings"})
}

// PutSettings replaces the instance settings, conditionally on ifMatchETag.
func (c *Client) PutSettings(ctx context.Context, s *enrollment.Settings, ifMatchETag string) (*enrollment.Settings, error) {
	return call[enrollment.Settings](ctx, c, request{method: http.MethodPut, path: "/settings", body: s, header: ifMatch(ifMatchETag)})
}
