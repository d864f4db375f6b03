package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

// GetGroup returns the enrollment group id (without keys).
func (c *Client) GetGroup(ctx context.Context, id string) (*enrollment.EnrollmentGroup, error) {
	return call[enrollment.EnrollmentGroup](ctx, c, request{method: http.MethodGet, path: "/enrollmentGroups/" + escape(id)})
}

// PutGroup creates or replaces g, conditionally on ifMatchETag when set.
func (c *Client) PutGroup(ctx context.Context, g *enrollment.EnrollmentGroup, ifMatchETag string) (*enrollment.EnrollmentGroup, error) {
	if g == nil || g.EnrollmentGroupID == "" {
		return nil, fmt.Errorf("client: enrollment group without enrollmentGroupId")
	}
	return call[enrollment.EnrollmentGroup](ctx, c, request{method: http.MethodPut, path: "/enrollmentGroups/" + escape(g.EnrollmentGroupID), body: g, header: ifMatch(ifMatchETag)})
}

// DeleteGroup deletes the group id, conditionally on ifMatchETag when set.
func (c *Client) DeleteGroup(ctx context.Context, id, ifMatchETag string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/enrollmentGroups/" + escape(id), header: ifMatch(ifMatchETag)})
}

// GroupKeys returns the attestation mechanism of group id with its keys.
func (c *Client) GroupKeys(ctx context.Context, id string) (*enrollment.AttestationMechanism, error) {
	return call[enrollment.AttestationMechanism](ctx, c, request{method: http.MethodPost, path: "/enrollmentGroups/" + escape(id) + "/attestationmechanism"})
}

// QueryGroups returns one page of enrollment groups and the next
// continuation ("" after the last).
func (c *Client) QueryGroups(ctx context.Context, pageSize int, continuation string) ([]*enrollment.EnrollmentGroup, string, error) {
	return page[*enrollment.EnrollmentGroup](ctx, c, http.MethodPost, "/enrollmentGroups/query", queryBody, pageSize, continuation)
}

// Groups iterates over every enrollment group.
func (c *Client) Groups(ctx context.Context, pageSize int) iter.Seq2[*enrollment.EnrollmentGroup, error] {
	return each(ctx, pageSize, c.QueryGroups)
}

// BulkGroups runs one bulk operation on enrollment groups.
func (c *Client) BulkGroups(ctx context.Context, mode string, items []*enrollment.EnrollmentGroup) (*enrollment.BulkEnrollmentGroupOperationResult, error) {
	body := enrollment.BulkEnrollmentGroupOperation{Mode: mode, EnrollmentGroups: items}
	return call[enrollment.BulkEnrollmentGroupOperationResult](ctx, c, request{method: http.MethodPost, path: "/enrollmentGroups", body: body})
}
