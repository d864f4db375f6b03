package api

import (
	"github.com/zdps/zdps/internal/api/apirequest"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/pkg/enrollment"
)

// queryGroupRegistrations lists the records of the devices registered
// through one enrollment group.
func (a *API) queryGroupRegistrations(w http.ResponseWriter, r *http.Request) {
	group := chi.URLParam(r, "enrollmentGroupId")
	if err := enrollment.ValidateGroupID(group); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.queryRegistrationsBy(w, r, group)
}

// queryRegistrations lists every record (a zdps extension, for `zdps
// registration list`).
func (a *API) queryRegistrations(w http.ResponseWriter, r *http.Request) {
	a.queryRegistrationsBy(w, r, "")
}

// queryRegistrationsBy answers a page of the group's records, or of every
// record when group is "".
func (a *API) queryRegistrationsBy(w http.ResponseWriter, r *http.Request, group string) {
	if err := apirequest.ReadQuery(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	listPage(a, w, r, "DeviceRegistration", func(cont string, limit int) ([]*enrollment.Registration, string, error) {
		return a.uc.Registrations.Registrations(r.Context(), group, cont, limit)
	}, (*enrollment.Registration).ServiceState)
}
