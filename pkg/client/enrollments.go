package client

import (
	"context"
	"iter"
	"net/http"

	"github.com/zdps/zdps/pkg/enrollment"
)

var enrollments = resource[enrollment.IndividualEnrollment]{base: "/enrollments", noun: "enrollment", idField: "registrationId",
	id: func(e *enrollment.IndividualEnrollment) string { return e.RegistrationID }}

// GetEnrollment returns the individual enrollment id (without keys).
func (c *Client) GetEnrollment(ctx context.Context, id string) (*enrollment.IndividualEnrollment, error) {
	return enrollments.get(ctx, c, id)
}

// PutEnrollment creates or replaces e. A non-empty ifMatch makes the write
// conditional on the stored ETag (ErrPreconditionFailed otherwise).
func (c *Client) PutEnrollment(ctx context.Context, e *enrollment.IndividualEnrollment, ifMatchETag string) (*enrollment.IndividualEnrollment, error) {
	return enrollments.put(ctx, c, e, ifMatch(ifMatchETag))
}

// DeleteEnrollment deletes the enrollment id, only if its ETag is
// ifMatchETag when that is not empty.
func (c *Client) DeleteEnrollment(ctx context.Context, id, ifMatchETag string) error {
	return enrollments.delete(ctx, c, id, ifMatchETag)
}

// EnrollmentKeys returns the attestation mechanism of id with its keys.
func (c *Client) EnrollmentKeys(ctx context.Context, id string) (*enrollment.AttestationMechanism, error) {
	return call[enrollment.AttestationMechanism](ctx, c, request{method: http.MethodPost, path: enrollments.path(id) + "/attestationmechanism"})
}

// QueryEnrollments returns one page of individual enrollments and the
// continuation of the next page ("" after the last). pageSize 0 lets the
// server choose.
func (c *Client) QueryEnrollments(ctx context.Context, pageSize int, continuation string) ([]*enrollment.IndividualEnrollment, string, error) {
	return page[*enrollment.IndividualEnrollment](ctx, c, http.MethodPost, "/enrollments/query", queryBody, pageSize, continuation)
}

// Enrollments iterates over every individual enrollment, page by page.
func (c *Client) Enrollments(ctx context.Context, pageSize int) iter.Seq2[*enrollment.IndividualEnrollment, error] {
	return each(ctx, pageSize, c.QueryEnrollments)
}

// BulkEnrollments runs one bulk operation (enrollment.BulkCreate, ...). The
// service applies it item by item: per-item failures are in the result's
// Errors, and a non-nil error means the call as a whole failed.
func (c *Client) BulkEnrollments(ctx context.Context, mode string, items []*enrollment.IndividualEnrollment) (*enrollment.BulkOperationResult, error) {
	body := enrollment.BulkEnrollmentOperation{Mode: mode, Enrollments: items}
	return call[enrollment.BulkOperationResult](ctx, c, request{method: http.MethodPost, path: "/enrollments", body: body})
}
