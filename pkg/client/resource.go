package client

import (
	"context"
	"fmt"
	"net/http"
)

// resource is what differs between the documents the service keeps at
// base/{id} (enrollments, groups, hubs, policies, sites); one
// implementation of get, put and delete serves them all.
type resource[T any] struct {
	base string // "/hubs"
	// noun and idField name the document and its ID in the error of a
	// write without one ("client: hub without name").
	noun, idField string
	id            func(*T) string
	// body is what a write sends; nil sends the document itself.
	body func(*T) any
}

func (r resource[T]) path(id string) string { return r.base + "/" + escape(id) }

func (r resource[T]) get(ctx context.Context, c *Client, id string) (*T, error) {
	return call[T](ctx, c, request{method: http.MethodGet, path: r.path(id)})
}

// put writes v under header (ifMatch or createOnly).
func (r resource[T]) put(ctx context.Context, c *Client, v *T, header http.Header) (*T, error) {
	if v == nil || r.id(v) == "" {
		return nil, fmt.Errorf("client: %s without %s", r.noun, r.idField)
	}
	var body any = v
	if r.body != nil {
		body = r.body(v)
	}
	return call[T](ctx, c, request{method: http.MethodPut, path: r.path(r.id(v)), body: body, header: header})
}

func (r resource[T]) delete(ctx context.Context, c *Client, id, ifMatchETag string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: r.path(id), header: ifMatch(ifMatchETag)})
}
