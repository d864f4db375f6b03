package client

import (
	"context"
	"net/http"
	"time"
)

// ConsoleLink is a one-time sign-in link to the web console.
type ConsoleLink struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
	// Principal names whom the link signs in ("policy:NAME").
	Principal string `json:"principal"`
}

// ConsoleLink calls POST /console/links: a one-time, short-lived sign-in
// link to the web console with the rights of the client's policy.
func (c *Client) ConsoleLink(ctx context.Context) (*ConsoleLink, error) {
	return call[ConsoleLink](ctx, c, request{method: http.MethodPost, path: "/console/links"})
}
