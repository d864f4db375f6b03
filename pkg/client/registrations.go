package client

import (
	"context"
	"iter"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

// GetRegistration returns the registration state of device id.
func (c *Client) GetRegistration(ctx context.Context, id string) (*enrollment.RegistrationState, error) {
	return call[enrollment.RegistrationState](ctx, c, request{method: http.MethodGet, path: "/registrations/" + escape(id)})
}

// DeleteRegistration deletes the registration record of id, conditionally
// on ifMatchETag when set. The device may register again afterwards.
func (c *Client) DeleteRegistration(ctx context.Context, id, ifMatchETag string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/registrations/" + escape(id), header: ifMatch(ifMatchETag)})
}

// QueryRegistrations returns one page of registration states: those of the
// enrollment group groupID, or every record when groupID is "".
func (c *Client) QueryRegistrations(ctx context.Context, groupID string, pageSize int, continuation string) ([]*enrollment.RegistrationState, string, error) {
	path := "/registrations/query"
	if groupID != "" {
		path = "/registrations/" + escape(groupID) + "/query"
	}
	return page[*enrollment.RegistrationState](ctx, c, http.MethodPost, path, queryBody, pageSize, continuation)
}

// Registrations iterates over the registration states of groupID (every
// record when "").
func (c *Client) Registrations(ctx context.Context, groupID string, pageSize int) iter.Seq2[*enrollment.RegistrationState, error] {
	return each(ctx, pageSize, func(ctx context.Context, n int, cont string) ([]*enrollment.RegistrationState, string, error) {
		return c.QueryRegistrations(ctx, groupID, n, cont)
	})
}
