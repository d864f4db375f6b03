package api

import (
	"github.com/zdps/zdps/internal/api/apirequest"
	"net/http"

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

// listPage answers one page of a list (GET) or query (POST .../query) with
// the paging headers, each item in the form conv gives it.
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

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request) {
	listPage(a, w, r, "SharedAccessPolicy", func(cont string, limit int) ([]*enrollment.SharedAccessPolicy, string, error) {
		return a.uc.Resources.Policies(r.Context(), cont, limit)
	}, (*enrollment.SharedAccessPolicy).Redacted)
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
	b, err := apirequest.RequireBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s, err := enrollment.DecodeSettings(b)
	if err != nil {
		a.writeError(w, r, badRequest(err))
		return
	}
	cond, err := apirequest.WriteCondition(r)
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
