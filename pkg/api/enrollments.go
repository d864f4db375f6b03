package api

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
)

// enrollmentKind describes what differs between individual enrollments and
// enrollment groups, so that one implementation serves both: they share
// every operation of docs/protocol.md#service-api.
type enrollmentKind[T store.Document] struct {
	resource   string // audit resource name
	param      string // chi URL parameter of the ID
	idField    string // JSON field of the ID
	itemType   string // x-ms-item-type of query answers
	collection func(*store.Store) *store.Collection[T]
	validateID func(string) error
	decode     func([]byte) (T, error)
	id         func(T) string
	att        func(T) *enrollment.AttestationMechanism
	redacted   func(T) T
	generate   func(T, io.Reader) error
	validate   func(T) error
	// decodeBulk returns the mode and the items of a bulk body.
	decodeBulk func([]byte) (string, []T, error)
	// bulkResult builds the DPS answer of a bulk call from its failures.
	bulkResult func([]bulkFailure) any
	// withState, when set, adds the read-only registrationState to a GET
	// answer.
	withState func(ctx context.Context, st *store.Store, v T) error
	// revoke runs in the transaction that writes (v) or deletes (v nil)
	// a document and revokes the certificates the change withdraws; it
	// returns the revocation jobs it stored (see revoke.go).
	revoke func(ctx context.Context, a *API, tx store.Tx, id string, v T) ([]revocation.Job, error)
}

var enrollments = enrollmentKind[*enrollment.IndividualEnrollment]{
	resource:   "enrollment",
	param:      "registrationId",
	idField:    "registrationId",
	itemType:   "Enrollment",
	collection: func(s *store.Store) *store.Collection[*enrollment.IndividualEnrollment] { return s.Enrollments },
	validateID: enrollment.ValidateRegistrationID,
	decode:     enrollment.DecodeIndividualEnrollment,
	id:         func(e *enrollment.IndividualEnrollment) string { return e.RegistrationID },
	att:        func(e *enrollment.IndividualEnrollment) *enrollment.AttestationMechanism { return e.Attestation },
	redacted:   (*enrollment.IndividualEnrollment).Redacted,
	generate:   (*enrollment.IndividualEnrollment).GenerateMissingKeys,
	validate:   (*enrollment.IndividualEnrollment).Validate,
	revoke:     revokeEnrollmentTx,
	decodeBulk: func(b []byte) (string, []*enrollment.IndividualEnrollment, error) {
		op, err := enrollment.DecodeBulkEnrollments(b)
		if err != nil {
			return "", nil, err
		}
		return op.Mode, op.Enrollments, nil
	},
	withState: func(ctx context.Context, st *store.Store, e *enrollment.IndividualEnrollment) error {
		// DPS shows the device's registration in its individual
		// enrollment; a record made through a group belongs to the group.
		rec, err := st.Registrations.Get(ctx, e.RegistrationID)
		switch {
		case isNotFound(err):
			return nil
		case err != nil:
			return err
		}
		if rec.EnrollmentGroupID == "" {
			e.RegistrationState = rec.ServiceState()
		}
		return nil
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
	resource:   "enrollmentGroup",
	param:      "enrollmentGroupId",
	idField:    "enrollmentGroupId",
	itemType:   "EnrollmentGroup",
	collection: func(s *store.Store) *store.Collection[*enrollment.EnrollmentGroup] { return s.Groups },
	validateID: enrollment.ValidateGroupID,
	decode:     enrollment.DecodeEnrollmentGroup,
	id:         func(g *enrollment.EnrollmentGroup) string { return g.EnrollmentGroupID },
	att:        func(g *enrollment.EnrollmentGroup) *enrollment.AttestationMechanism { return g.Attestation },
	redacted:   (*enrollment.EnrollmentGroup).Redacted,
	generate:   (*enrollment.EnrollmentGroup).GenerateMissingKeys,
	validate:   (*enrollment.EnrollmentGroup).Validate,
	revoke:     revokeGroupTx,
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

// pathID reads and validates the ID in the path.
func (k *enrollmentKind[T]) pathID(r *http.Request) (string, error) {
	id := chi.URLParam(r, k.param)
	if err := k.validateID(id); err != nil {
		return "", err
	}
	return id, nil
}

func getDoc[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := k.pathID(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		v, err := k.collection(a.store).Get(r.Context(), id)
		if err != nil {
			a.writeError(w, r, about(k.resource, id, err))
			return
		}
		out := k.redacted(v)
		if k.withState != nil {
			if err := k.withState(r.Context(), a.store, out); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
		a.writeJSON(w, http.StatusOK, out)
	}
}

// putDoc creates or replaces a document. Keys the request leaves empty are
// kept from the stored document, or generated when there is none. The read
// of the stored keys and the write are one transaction, so a concurrent
// key change is never lost; the If-Match condition is checked in the same
// transaction by the store.
func putDoc[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, v, cond, err := putRequest(r, k.pathID, k.decode, k.id, k.idField)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := a.checkCAReferences(r.Context(), k.att(v)); err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := a.checkWrite(r.Context(), v); err != nil {
			a.writeError(w, r, err)
			return
		}
		created, jobs, err := putMerged(r.Context(), a, k, v, cond)
		if err != nil {
			a.writeError(w, r, about(k.resource, id, preconditionOnMissing(err, cond)))
			return
		}
		a.finishRevocation(r, jobs)
		a.audit(r, createdOrUpdated(created), k.resource, k.id(v))
		// DPS answers 200 for a create as for an update.
		a.writeJSON(w, http.StatusOK, k.redacted(v))
	}
}

// putMerged writes v under cond with its keys merged (see putDoc). Keys
// are generated before the transaction because a backend may run the
// transaction function more than once; the function itself only reads
// through the transaction and sets the same keys on every run.
func putMerged[T store.Document](ctx context.Context, a *API, k *enrollmentKind[T], v T, cond store.Condition) (created bool, jobs []revocation.Job, err error) {
	req := attKeys(k.att(v))
	if err := k.generate(v, a.rand); err != nil {
		return false, nil, fmt.Errorf("generate keys: %w", err)
	}
	gen := attKeys(k.att(v))
	err = a.store.Backend.Update(ctx, func(tx store.Tx) error {
		c := k.collection(a.store).In(tx)
		old, err := c.Get(ctx, k.id(v))
		var was keyPair
		switch {
		case err == nil:
			was = attKeys(k.att(old))
		case !isNotFound(err):
			return err
		}
		setAttKeys(k.att(v), merge(req, was, gen))
		created, err = c.Put(ctx, v, cond)
		if err != nil || k.revoke == nil {
			return err
		}
		jobs, err = k.revoke(ctx, a, tx, k.id(v), v)
		return err
	})
	return created, jobs, err
}

func deleteDoc[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := k.pathID(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		// Deleting a group leaves its registration records: they describe
		// devices that exist on their hubs (docs/protocol.md#allocation-and-reprovisioning). Their
		// certificates are revoked with the deletion (revoke.go).
		var jobs []revocation.Job
		err = a.store.Backend.Update(r.Context(), func(tx store.Tx) error {
			if err := k.collection(a.store).In(tx).Delete(r.Context(), id, store.Condition{IfMatch: ifMatch(r)}); err != nil {
				return err
			}
			var zero T
			var err error
			jobs, err = k.revoke(r.Context(), a, tx, id, zero)
			return err
		})
		if err != nil {
			a.writeError(w, r, about(k.resource, id, err))
			return
		}
		a.finishRevocation(r, jobs)
		a.audit(r, "delete", k.resource, id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// docKeys answers the attestation mechanism with its keys. It is the only
// read that returns keys, and it is audited like a change.
func docKeys[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := k.pathID(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		v, err := k.collection(a.store).Get(r.Context(), id)
		if err != nil {
			a.writeError(w, r, about(k.resource, id, err))
			return
		}
		a.audit(r, "read-keys", k.resource, k.id(v))
		a.writeJSON(w, http.StatusOK, k.att(v))
	}
}

func queryDocs[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := readQuery(r); err != nil {
			a.writeError(w, r, err)
			return
		}
		limit, cont, err := a.pageParams(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		items, next, err := k.collection(a.store).List(r.Context(), cont, limit)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		out := make([]T, len(items))
		for i, v := range items {
			out[i] = k.redacted(v)
		}
		writePage(a, w, out, next, limit, k.itemType)
	}
}

// errNoETag is the per-item error of an updateIfMatchETag item without etag.
var errNoETag = &enrollment.ValidationError{Field: "etag", Reason: "is required in updateIfMatchETag mode"}
