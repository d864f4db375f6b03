package api

import (
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
	if err := readQuery(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	limit, cont, err := a.pageParams(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	recs, next, err := a.uc.Registrations.Registrations(r.Context(), group, cont, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := make([]*enrollment.RegistrationState, len(recs))
	for i, rec := range recs {
		out[i] = rec.ServiceState()
	}
	writePage(a, w, out, next, limit, "DeviceRegistration")
}
