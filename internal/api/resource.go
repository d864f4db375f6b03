package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/api/apirequest"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// resource is how the service API addresses one kind of named resource:
// the name audit events and error messages give it, and its ID in the
// path, validated. The handlers below serve every kind the same way.
type resource struct {
	name   string
	pathID func(*http.Request) (string, error)
}

// pathParam reads the path parameter param and validates it.
func pathParam(param string, validate func(string) error) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		id := chi.URLParam(r, param)
		return id, validate(id)
	}
}

var (
	hubs          = resource{"hub", pathParam("name", enrollment.ValidateHostName)}
	policies      = resource{"policy", pathParam("keyName", enrollment.ValidatePolicyName)}
	caCerts       = resource{"certificate", pathParam("name", enrollment.ValidateCACertificateName)}
	registrations = resource{"registration", pathParam("registrationId", enrollment.ValidateRegistrationID)}
)

// The stored IDs of the resources, for audit events.
func hubName(h *enrollment.Hub) string                      { return h.Name }
func policyKeyName(p *enrollment.SharedAccessPolicy) string { return p.KeyName }
func caName(c *enrollment.CACertificate) string             { return c.Name }

// getOne answers the resource the path names, in the form answer gives
// it. A non-empty action audits the read under the stored ID (idOf): a
// read that returns keys is audited like a change.
func getOne[T, U any](a *API, res resource, get func(ctx context.Context, id string) (T, error), answer func(*http.Request, T) (U, error), action string, idOf func(T) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := res.pathID(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		v, err := get(r.Context(), id)
		if err != nil {
			a.writeError(w, r, about(res.name, id, err))
			return
		}
		out, err := answer(r, v)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if action != "" {
			a.audit(r, action, res.name, idOf(v))
		}
		a.writeJSON(w, http.StatusOK, out)
	}
}

// putOne creates or replaces the resource the path names with the body
// (putRequest) and answers it, in the form answer gives it.
func putOne[T, U any](a *API, res resource, decode func([]byte) (T, error), idOf func(T) string, idField string, put func(ctx context.Context, v T, cond store.Condition) (bool, error), answer func(T) U) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, v, cond, err := putRequest(r, res.pathID, decode, idOf, idField)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		created, err := put(r.Context(), v, cond)
		if err != nil {
			a.writeError(w, r, about(res.name, id, err))
			return
		}
		a.audit(r, createdOrUpdated(created), res.name, idOf(v))
		// DPS answers 200 for a create as for an update.
		a.writeJSON(w, http.StatusOK, answer(v))
	}
}

// deleteOne deletes the resource the path names, under If-Match.
func deleteOne(a *API, res resource, del func(ctx context.Context, id, ifMatch string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := res.pathID(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := del(r.Context(), id, apirequest.IfMatch(r)); err != nil {
			a.writeError(w, r, about(res.name, id, err))
			return
		}
		a.audit(r, "delete", res.name, id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// as answers a resource in the form f gives it, for getOne.
func as[T, U any](f func(T) U) func(*http.Request, T) (U, error) {
	return func(_ *http.Request, v T) (U, error) { return f(v), nil }
}

// same is the identity, for a resource answered as it is stored.
func same[T any](v T) T { return v }
