package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// This file serves zdps's own resources: linked hubs, shared access
// policies and instance settings. All of them need ServiceConfig.

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	// A read transaction proves the store answers; a closed store makes
	// the instance unhealthy (503).
	if err := a.store.Backend.View(r.Context(), func(store.Tx) error { return nil }); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// listPage answers a GET list with the query calls' paging headers.
func listPage[T, U any](a *API, w http.ResponseWriter, r *http.Request, itemType string, list func(cont string, limit int) ([]T, string, error), conv func(T) U) {
	limit, cont, err := a.pageParams(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	items, next, err := list(cont, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := make([]U, len(items))
	for i, v := range items {
		out[i] = conv(v)
	}
	writePage(a, w, out, next, limit, itemType)
}

// listHubs answers the hubs with how many devices each holds.
func (a *API) listHubs(w http.ResponseWriter, r *http.Request) {
	listPage(a, w, r, "Hub", func(cont string, limit int) ([]*enrollment.Hub, string, error) {
		return a.uc.Resources.Hubs(r.Context(), cont, limit)
	}, func(h *enrollment.Hub) *enrollment.Hub { return h })
}

// hubPathName reads and validates the hub name in the path.
func hubPathName(r *http.Request) (string, error) {
	name := chi.URLParam(r, "name")
	return name, enrollment.ValidateHostName(name)
}

func (a *API) getHub(w http.ResponseWriter, r *http.Request) {
	name, err := hubPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	h, err := a.uc.Resources.Hub(r.Context(), name)
	if err != nil {
		a.writeError(w, r, about("hub", name, err))
		return
	}
	a.writeJSON(w, http.StatusOK, h)
}

func (a *API) putHub(w http.ResponseWriter, r *http.Request) {
	name, h, cond, err := putRequest(r, hubPathName, enrollment.DecodeHub, func(h *enrollment.Hub) string { return h.Name }, "name")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	created, err := a.uc.Resources.PutHub(r.Context(), h, cond)
	if err != nil {
		a.writeError(w, r, about("hub", name, err))
		return
	}
	a.audit(r, createdOrUpdated(created), "hub", h.Name)
	a.writeJSON(w, http.StatusOK, h)
}

func (a *API) deleteHub(w http.ResponseWriter, r *http.Request) {
	name, err := hubPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.uc.Resources.DeleteHub(r.Context(), name, ifMatch(r)); err != nil {
		a.writeError(w, r, about("hub", name, err))
		return
	}
	a.audit(r, "delete", "hub", name)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request) {
	listPage(a, w, r, "SharedAccessPolicy", func(cont string, limit int) ([]*enrollment.SharedAccessPolicy, string, error) {
		return a.uc.Resources.Policies(r.Context(), cont, limit)
	}, (*enrollment.SharedAccessPolicy).Redacted)
}

// policyPathName reads and validates the policy name in the path.
func policyPathName(r *http.Request) (string, error) {
	name := chi.URLParam(r, "keyName")
	return name, enrollment.ValidatePolicyName(name)
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) {
	name, err := policyPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.uc.Resources.Policy(r.Context(), name)
	if err != nil {
		a.writeError(w, r, about("policy", name, err))
		return
	}
	a.writeJSON(w, http.StatusOK, p.Redacted())
}

// putPolicy creates or replaces a policy. Empty keys keep the stored keys
// or are generated; the answer has no keys (POST .../keys returns them).
// The owner policy must keep ServiceConfig, so that the instance always
// has a policy able to manage policies.
func (a *API) putPolicy(w http.ResponseWriter, r *http.Request) {
	name, p, cond, err := putRequest(r, policyPathName, enrollment.DecodeSharedAccessPolicy, func(p *enrollment.SharedAccessPolicy) string { return p.KeyName }, "keyName")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	created, err := a.uc.Resources.PutPolicy(r.Context(), p, cond)
	if err != nil {
		a.writeError(w, r, about("policy", name, err))
		return
	}
	a.audit(r, createdOrUpdated(created), "policy", p.KeyName)
	a.writeJSON(w, http.StatusOK, p.Redacted())
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request) {
	name, err := policyPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.uc.Resources.DeletePolicy(r.Context(), name, ifMatch(r)); err != nil {
		a.writeError(w, r, about("policy", name, err))
		return
	}
	a.audit(r, "delete", "policy", name)
	w.WriteHeader(http.StatusNoContent)
}

// policyKeys answers the policy with its keys; audited like a change.
func (a *API) policyKeys(w http.ResponseWriter, r *http.Request) {
	name, err := policyPathName(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.uc.Resources.Policy(r.Context(), name)
	if err != nil {
		a.writeError(w, r, about("policy", name, err))
		return
	}
	a.audit(r, "read-keys", "policy", p.KeyName)
	a.writeJSON(w, http.StatusOK, p)
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request) {
	s, err := a.uc.Resources.Settings(r.Context())
	if err != nil {
		a.writeError(w, r, about("settings", "", err))
		return
	}
	a.writeJSON(w, http.StatusOK, s)
}

// putSettings changes the instance settings; the ID scope, fixed at first
// start, is kept whatever the request says.
func (a *API) putSettings(w http.ResponseWriter, r *http.Request) {
	b, err := requireBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s, err := enrollment.DecodeSettings(b)
	if err != nil {
		a.writeError(w, r, badRequest(err))
		return
	}
	cond, err := writeCondition(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	err = a.uc.Resources.PutSettings(r.Context(), s, cond)
	if err != nil {
		a.writeError(w, r, about("settings", "", err))
		return
	}
	a.audit(r, "update", "settings", s.StoreKey())
	a.writeJSON(w, http.StatusOK, s)
}
