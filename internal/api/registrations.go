package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/pkg/enrollment"
)

// getRegistration answers a device's registration record in its DPS form
// (DeviceRegistrationState).
func (a *API) getRegistration(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "registrationId")
	if err := enrollment.ValidateRegistrationID(id); err != nil {
		a.writeError(w, r, err)
		return
	}
	rec, err := a.uc.Registrations.Registration(r.Context(), id)
	if err != nil {
		a.writeError(w, r, about("registration", id, err))
		return
	}
	a.writeJSON(w, http.StatusOK, rec.ServiceState())
}

// deleteRegistration forgets a device's registration: its next register
// call is a first assignment. The certificates issued to it are revoked
// in the same transaction (unless Config.KeepCertificatesOnDisable).
func (a *API) deleteRegistration(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "registrationId")
	if err := enrollment.ValidateRegistrationID(id); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.uc.Registrations.DeleteRegistration(r.Context(), id, ifMatch(r)); err != nil {
		a.writeError(w, r, about("registration", id, err))
		return
	}
	a.audit(r, "delete", "registration", id)
	w.WriteHeader(http.StatusNoContent)
}

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
