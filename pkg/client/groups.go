package client

import (
	"context"
	"iter"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

var groups = resource[enrollment.EnrollmentGroup]{base: "/enrollmentGroups", noun: "enrollment group", idField: "enrollmentGroupId",
	id: func(g *enrollment.EnrollmentGroup) string { return g.EnrollmentGroupID }}

// GetGroup returns the enrollment group id (without keys).
func (c *Client) GetGroup(ctx context.Context, id string) (*enrollment.EnrollmentGroup, error) {
	return groups.get(ctx, c, id)
}

// PutGroup creates or replaces g, conditionally on ifMatchETag when set.
func (c *Client) PutGroup(ctx context.Context, g *enrollment.EnrollmentGroup, ifMatchETag string) (*enrollment.EnrollmentGroup, error) {
	return groups.put(ctx, c, g, ifMatch(ifMatchETag))
}

// DeleteGroup deletes the group id, conditionally on ifMatchETag when set.
func (c *Client) DeleteGroup(ctx context.Context, id, ifMatchETag string) error {
	return groups.delete(ctx, c, id, ifMatchETag)
}

// GroupKeys returns the attestation mechanism of group id with its keys.
func (c *Client) GroupKeys(ctx context.Context, id string) (*enrollment.AttestationMechanism, error) {
	return call[enrollment.AttestationMechanism](ctx, c, request{method: http.MethodPost, path: groups.path(id) + "/attestationmechanism"})
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
