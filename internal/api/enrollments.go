package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/api/apirequest"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// enrollmentKind is the transport's half of what differs between
// individual enrollments and enrollment groups (the use case's half is
// manage.Kind), so that one handler serves both: they share every
// operation of docs/protocol.md#service-api.
type enrollmentKind[T store.Document] struct {
	// docs picks the kind's use cases.
	docs       func(UseCases) Documents[T]
	path       string // the collection's path, e.g. /enrollments
	resource   string // audit resource name
	param      string // chi URL parameter of the ID
	idField    string // JSON field of the ID
	itemType   string // x-ms-item-type of query answers
	validateID func(string) error
	decode     func([]byte) (T, error)
	id         func(T) string
	att        func(T) *enrollment.AttestationMechanism
	redacted   func(T) T
	// decodeBulk returns the mode and the items of a bulk body.
	decodeBulk func([]byte) (string, []T, error)
	// bulkResult builds the DPS answer of a bulk call from its failures.
	bulkResult func([]bulkFailure) any
	// withState, when set, adds the read-only registrationState to a GET
	// answer.
	withState func(ctx context.Context, r RegistrationRecords, v T) error
}

var enrollments = enrollmentKind[*enrollment.IndividualEnrollment]{
	docs:       func(u UseCases) Documents[*enrollment.IndividualEnrollment] { return u.Enrollments },
	path:       "/enrollments",
	resource:   "enrollment",
	param:      "registrationId",
	idField:    "registrationId",
	itemType:   "Enrollment",
	validateID: enrollment.ValidateRegistrationID,
	decode:     enrollment.DecodeIndividualEnrollment,
	id:         func(e *enrollment.IndividualEnrollment) string { return e.RegistrationID },
	att:        func(e *enrollment.IndividualEnrollment) *enrollment.AttestationMechanism { return e.Attestation },
	redacted:   (*enrollment.IndividualEnrollment).Redacted,
	decodeBulk: func(b []byte) (string, []*enrollment.IndividualEnrollment, error) {
		op, err := enrollment.DecodeBulkEnrollments(b)
		if err != nil {
			return "", nil, err
		}
		return op.Mode, op.Enrollments, nil
	},
	withState: func(ctx context.Context, r RegistrationRecords, e *enrollment.IndividualEnrollment) error {
		st, err := r.EnrollmentState(ctx, e.RegistrationID)
		e.RegistrationState = st
		return err
	},
	bulkResult: func(fs []bulkFailure) any {
		res := enrollment.BulkOperationResult{IsSuccessful: len(fs) == 0, Errors: []enrollment.BulkOperationError{}}
		for _, f := range fs {
			res.Errors = append(res.Errors, enrollment.BulkOperationError{RegistrationID: f.id, ErrorCode: f.code, ErrorStatus: f.message})
		}
		return res
	},
}

var groups = enrollmentKind[*enrollment.EnrollmentGroup]{
	docs:       func(u UseCases) Documents[*enrollment.EnrollmentGroup] { return u.Groups },
	path:       "/enrollmentGroups",
	resource:   "enrollmentGroup",
	param:      "enrollmentGroupId",
	idField:    "enrollmentGroupId",
	itemType:   "EnrollmentGroup",
	validateID: enrollment.ValidateGroupID,
	decode:     enrollment.DecodeEnrollmentGroup,
	id:         func(g *enrollment.EnrollmentGroup) string { return g.EnrollmentGroupID },
	att:        func(g *enrollment.EnrollmentGroup) *enrollment.AttestationMechanism { return g.Attestation },
	redacted:   (*enrollment.EnrollmentGroup).Redacted,
	decodeBulk: func(b []byte) (string, []*enrollment.EnrollmentGroup, error) {
		op, err := enrollment.DecodeBulkEnrollmentGroups(b)
		if err != nil {
			return "", nil, err
		}
		return op.Mode, op.EnrollmentGroups, nil
	},
	bulkResult: func(fs []bulkFailure) any {
		res := enrollment.BulkEnrollmentGroupOperationResult{IsSuccessful: len(fs) == 0, Errors: []enrollment.BulkEnrollmentGroupOperationError{}}
		for _, f := range fs {
			res.Errors = append(res.Errors, enrollment.BulkEnrollmentGroupOperationError{EnrollmentGroupID: f.id, ErrorCode: f.code, ErrorStatus: f.message})
		}
		return res
	},
}

// docRoutes adds the routes of a kind of document to the service API:
// get, put, delete, read keys, query and bulk, under k.path.
func docRoutes[T store.Document](a *API, route func(method, pattern string, h http.HandlerFunc), k *enrollmentKind[T]) {
	one := k.path + "/{" + k.param + "}"
	route(http.MethodGet, one, getDoc(a, k))
	route(http.MethodPut, one, putDoc(a, k))
	route(http.MethodDelete, one, deleteDoc(a, k))
	route(http.MethodPost, one+"/attestationmechanism", docKeys(a, k))
	route(http.MethodPost, k.path+"/query", queryDocs(a, k))
	route(http.MethodPost, k.path, bulkDocs(a, k))
}

// pathID reads and validates the ID in the path.
func (k *enrollmentKind[T]) pathID(r *http.Request) (string, error) {
	id := chi.URLParam(r, k.param)
	if err := k.validateID(id); err != nil {
		return "", err
	}
	return id, nil
}

// res is the kind as a resource of the service API.
func (k *enrollmentKind[T]) res() resource { return resource{k.resource, k.pathID} }

// getDoc answers a document without its keys, an individual enrollment
// with its registrationState.
func getDoc[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return getOne(a, k.res(), k.docs(a.uc).Get, func(r *http.Request, v T) (T, error) {
		out := k.redacted(v)
		if k.withState == nil {
			return out, nil
		}
		return out, k.withState(r.Context(), a.uc.Registrations, out)
	}, "", nil)
}

// putDoc creates or replaces a document (manage.Put: keys the request
// leaves empty are kept or generated, in the write's transaction).
func putDoc[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return putOne(a, k.res(), k.decode, k.id, k.idField, k.docs(a.uc).Put, k.redacted)
}

func deleteDoc[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return deleteOne(a, k.res(), k.docs(a.uc).Delete)
}

// docKeys answers the attestation mechanism with its keys. It is the only
// read that returns keys, and it is audited like a change.
func docKeys[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return getOne(a, k.res(), k.docs(a.uc).Get, as(k.att), "read-keys", k.id)
}

func queryDocs[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := apirequest.ReadQuery(r); err != nil {
			a.writeError(w, r, err)
			return
		}
		listPage(a, w, r, k.itemType, func(cont string, limit int) ([]T, string, error) {
			return k.docs(a.uc).List(r.Context(), cont, limit)
		}, k.redacted)
	}
}
