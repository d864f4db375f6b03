package apirequest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/zdps/zdps/internal/store"
)

// ErrBadRequest: a request that is wrong in shape (malformed JSON, wrong
// content type, bad header, unsupported query or api-version).
var ErrBadRequest = errors.New("bad request")

// ReadBody reads a JSON request body. A content type, when given, must be
// JSON; an absent one is accepted because scripts often omit it.
func ReadBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, fmt.Errorf("%w: Content-Type must be application/json, not %q", ErrBadRequest, ct)
		}
	}
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		// Anything else is the client's connection failing mid-body.
		return nil, bodyReadFault(err)
	}
	return b, nil
}

// RequireBody is ReadBody for calls that need a body.
func RequireBody(r *http.Request) ([]byte, error) {
	b, err := ReadBody(r)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("%w: a JSON body is required", ErrBadRequest)
	}
	return b, nil
}

// IfMatch is the request's If-Match ETag, unquoted: the Node SDK sends the
// body's etag bare, RFC 9110 clients quote it, and a weak prefix carries no
// meaning for a compare-and-swap on whole documents.
func IfMatch(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}

// WriteCondition is the condition of a PUT: If-Match (see IfMatch), and
// If-None-Match: * for a create that must not replace an existing document
// (409 when it exists), for every resource. Other If-None-Match values are
// refused: zdps compares whole documents, so only "*" has a meaning here.
func WriteCondition(r *http.Request) (store.Condition, error) {
	cond := store.Condition{IfMatch: IfMatch(r)}
	switch v := strings.TrimSpace(r.Header.Get("If-None-Match")); v {
	case "":
	case "*":
		cond.IfNoneMatch = true
	default:
		return cond, fmt.Errorf("%w: If-None-Match supports only * (create only), not %q", ErrBadRequest, v)
	}
	return cond, nil
}

// querySpec is the body of the query calls.
type querySpec struct {
	Query string `json:"query"`
}

// ReadQuery accepts the one query zdps answers, "*" (every item), as the
// Azure SDKs send it. An empty body means the same, for scripts that send
// none on the registration queries.
func ReadQuery(r *http.Request) error {
	b, err := ReadBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var q querySpec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return fmt.Errorf("%w: query body: %w", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: query body: unexpected data after the JSON value", ErrBadRequest)
	}
	if strings.TrimSpace(q.Query) != "*" {
		return fmt.Errorf(`%w: unsupported query %q: zdps answers only {"query":"*"}, paged with x-ms-max-item-count and x-ms-continuation`, ErrBadRequest, q.Query)
	}
	return nil
}
