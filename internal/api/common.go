package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/zdps/zdps/internal/api/apirequest"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// audit records a management change (or a read of secrets) with the policy
// that made it.
func (a *API) audit(r *http.Request, action, resource, id string) {
	a.log.InfoContext(r.Context(), "audit",
		"action", action,
		"resource", resource,
		"id", id,
		"policy", policyName(r.Context()),
		"actor", audit.ActorFrom(r.Context()),
		"request_id", RequestID(r.Context()))
	if a.cfg.Trail != nil && (action == "read-keys" || action == "backup") {
		// The trail's names of resources (audit.Changes writes the same).
		if k, ok := map[string]string{"enrollmentGroup": "group", "certificate": "cacertificate"}[resource]; ok {
			resource = k
		}
		res := resource
		if id != "" {
			res += "/" + id
		}
		a.cfg.Trail.Add(audit.Event{Action: resource + "." + action, Outcome: audit.OutcomeSuccess, Actor: audit.ActorFrom(r.Context()),
			Resource: res, Source: r.RemoteAddr, Transport: "service"})
	}
}

func createdOrUpdated(created bool) string {
	if created {
		return "create"
	}
	return "update"
}

// pageParams reads x-ms-max-item-count (capped to MaxPageSize; absent or 0
// means MaxPageSize) and x-ms-continuation.
func (a *API) pageParams(r *http.Request) (limit int, continuation string, err error) {
	limit = a.cfg.MaxPageSize
	if v := strings.TrimSpace(r.Header.Get("x-ms-max-item-count")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "", fmt.Errorf("%w: x-ms-max-item-count must be a non-negative integer", errBadRequest)
		}
		if n > 0 && n < limit {
			limit = n
		}
	}
	return limit, strings.TrimSpace(r.Header.Get("x-ms-continuation")), nil
}

// writePage answers one page as a JSON array. The continuation header is
// set only when another page follows: the Node SDK keeps asking for as
// long as the header is present, even empty (docs/protocol.md#queries-and-paging).
func writePage[T any](a *API, w http.ResponseWriter, items []T, next string, limit int, itemType string) {
	if items == nil {
		items = []T{}
	}
	if next != "" {
		w.Header().Set("x-ms-continuation", next)
	}
	w.Header().Set("x-ms-max-item-count", strconv.Itoa(limit))
	w.Header().Set("x-ms-item-type", itemType)
	a.writeJSON(w, http.StatusOK, items)
}

// putRequest reads what every PUT of a named document needs: the name in
// the path, the strictly decoded body (whose own name, in field, must be
// the path's), and the write condition of If-Match / If-None-Match. Its
// errors are ready for writeError.
func putRequest[T any](r *http.Request, pathName func(*http.Request) (string, error), decode func([]byte) (T, error), nameOf func(T) string, field string) (name string, v T, cond store.Condition, err error) {
	if name, err = pathName(r); err != nil {
		return name, v, cond, err
	}
	b, err := apirequest.RequireBody(r)
	if err != nil {
		return name, v, cond, err
	}
	if v, err = decode(b); err != nil {
		return name, v, cond, badRequest(err)
	}
	if !strings.EqualFold(nameOf(v), name) {
		return name, v, cond, mismatch(field, nameOf(v), name)
	}
	cond, err = apirequest.WriteCondition(r)
	return name, v, cond, err
}

// mismatch is the error of a body whose ID differs from the path's.
func mismatch(field, body, path string) error {
	return &enrollment.ValidationError{Field: field, Reason: fmt.Sprintf("%q does not match %q in the path", body, path)}
}
