package clienttest

import (
	"net/http"
	"strings"

	"github.com/zdps/zdps/pkg/enrollment"
)

func (s *Server) getEnrollment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	e, ok := s.enrollments[enrollment.Key(r.PathValue("id"))]
	if ok {
		e = clone(e)
	}
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, 404201, "enrollment not found")
		return
	}
	withoutKeys(e.Attestation)
	reply(w, http.StatusOK, e)
}

// storeEnrollment creates or updates e under the lock; it returns an
// error status (0 on success) and the stored copy.
func (s *Server) storeEnrollment(e *enrollment.IndividualEnrollment, create bool) (int, *enrollment.IndividualEnrollment) {
	if err := enrollment.ValidateRegistrationID(e.RegistrationID); err != nil {
		return http.StatusBadRequest, nil
	}
	if e.Attestation == nil {
		return http.StatusBadRequest, nil
	}
	k := enrollment.Key(e.RegistrationID)
	old, exists := s.enrollments[k]
	if create && exists {
		return http.StatusConflict, nil
	}
	e.RegistrationState = nil
	var ov *enrollment.Versioned
	if exists {
		ov = &old.Versioned
	}
	stamp(&e.Versioned, ov, s.nextETag())
	fillKeys(e.Attestation)
	s.enrollments[k] = clone(e)
	return 0, e
}

func (s *Server) putEnrollment(w http.ResponseWriter, r *http.Request) {
	var e enrollment.IndividualEnrollment
	if !decode(w, r, &e) {
		return
	}
	if !strings.EqualFold(e.RegistrationID, r.PathValue("id")) {
		apiError(w, http.StatusBadRequest, 400004, "registrationId %q does not match the path %q", e.RegistrationID, r.PathValue("id"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.enrollments[enrollment.Key(e.RegistrationID)]
	stored := ""
	if exists {
		stored = old.ETag
	}
	if !precondition(w, r, stored, exists) {
		return
	}
	status, out := s.storeEnrollment(&e, false)
	if status != 0 {
		apiError(w, status, status*1000+4, "invalid enrollment")
		return
	}
	out = clone(out)
	withoutKeys(out.Attestation)
	reply(w, http.StatusOK, out)
}

func (s *Server) deleteEnrollment(w http.ResponseWriter, r *http.Request) {
	k := enrollment.Key(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.enrollments[k]
	if !ok {
		apiError(w, http.StatusNotFound, 404201, "enrollment not found")
		return
	}
	if !precondition(w, r, e.ETag, true) {
		return
	}
	delete(s.enrollments, k)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) enrollmentKeys(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	e, ok := s.enrollments[enrollment.Key(r.PathValue("id"))]
	if ok {
		e = clone(e)
	}
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, 404201, "enrollment not found")
		return
	}
	reply(w, http.StatusOK, e.Attestation)
}

func (s *Server) queryEnrollments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	items := sorted(s.enrollments)
	s.mu.Unlock()
	for _, e := range items {
		withoutKeys(e.Attestation)
	}
	page(w, r, items)
}

func (s *Server) bulkEnrollments(w http.ResponseWriter, r *http.Request) {
	var op enrollment.BulkEnrollmentOperation
	if !decode(w, r, &op) {
		return
	}
	s.bulkCalls.Add(1)
	res := enrollment.BulkOperationResult{IsSuccessful: true, Errors: []enrollment.BulkOperationError{}}
	fail := func(id string, status int, msg string) {
		res.IsSuccessful = false
		res.Errors = append(res.Errors, enrollment.BulkOperationError{RegistrationID: id, ErrorCode: status*1000 + 201, ErrorStatus: msg})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range op.Enrollments {
		if e == nil {
			continue
		}
		k := enrollment.Key(e.RegistrationID)
		switch op.Mode {
		case enrollment.BulkCreate, enrollment.BulkUpdate:
			status, _ := s.storeEnrollment(e, op.Mode == enrollment.BulkCreate)
			switch status {
			case 0:
				if op.Mode == enrollment.BulkCreate {
					s.bulkCreate.Add(1)
				}
			case http.StatusConflict:
				fail(e.RegistrationID, status, "Enrollment already exists")
			default:
				fail(e.RegistrationID, status, "invalid enrollment")
			}
		case enrollment.BulkDelete:
			if _, ok := s.enrollments[k]; !ok {
				fail(e.RegistrationID, http.StatusNotFound, "not found")
				continue
			}
			delete(s.enrollments, k)
		default:
			apiError(w, http.StatusBadRequest, 400004, "unsupported bulk mode %q", op.Mode)
			return
		}
	}
	reply(w, http.StatusOK, res)
}

func (s *Server) bulkGroups(w http.ResponseWriter, r *http.Request) {
	var op enrollment.BulkEnrollmentGroupOperation
	if !decode(w, r, &op) {
		return
	}
	s.bulkCalls.Add(1)
	res := enrollment.BulkEnrollmentGroupOperationResult{IsSuccessful: true, Errors: []enrollment.BulkEnrollmentGroupOperationError{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range op.EnrollmentGroups {
		k := enrollment.Key(g.EnrollmentGroupID)
		_, exists := s.groups[k]
		switch {
		case op.Mode == enrollment.BulkCreate && !exists:
			stamp(&g.Versioned, nil, s.nextETag())
			fillKeys(g.Attestation)
			s.groups[k] = clone(g)
		case op.Mode == enrollment.BulkDelete && exists:
			delete(s.groups, k)
		default:
			res.IsSuccessful = false
			res.Errors = append(res.Errors, enrollment.BulkEnrollmentGroupOperationError{EnrollmentGroupID: g.EnrollmentGroupID, ErrorCode: 409202, ErrorStatus: "not applicable"})
		}
	}
	reply(w, http.StatusOK, res)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g, ok := s.groups[enrollment.Key(r.PathValue("id"))]
	if ok {
		g = clone(g)
	}
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, 404202, "enrollment group not found")
		return
	}
	withoutKeys(g.Attestation)
	reply(w, http.StatusOK, g)
}

func (s *Server) putGroup(w http.ResponseWriter, r *http.Request) {
	var g enrollment.EnrollmentGroup
	if !decode(w, r, &g) {
		return
	}
	if !strings.EqualFold(g.EnrollmentGroupID, r.PathValue("id")) || g.Attestation == nil {
		apiError(w, http.StatusBadRequest, 400004, "invalid enrollment group")
		return
	}
	k := enrollment.Key(g.EnrollmentGroupID)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.groups[k]
	stored := ""
	var ov *enrollment.Versioned
	if exists {
		stored, ov = old.ETag, &old.Versioned
	}
	if !precondition(w, r, stored, exists) {
		return
	}
	stamp(&g.Versioned, ov, s.nextETag())
	fillKeys(g.Attestation)
	s.groups[k] = clone(&g)
	withoutKeys(g.Attestation)
	reply(w, http.StatusOK, &g)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	k := enrollment.Key(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[k]
	if !ok {
		apiError(w, http.StatusNotFound, 404202, "enrollment group not found")
		return
	}
	if !precondition(w, r, g.ETag, true) {
		return
	}
	delete(s.groups, k)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) groupKeys(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g, ok := s.groups[enrollment.Key(r.PathValue("id"))]
	if ok {
		g = clone(g)
	}
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, 404202, "enrollment group not found")
		return
	}
	reply(w, http.StatusOK, g.Attestation)
}

func (s *Server) queryGroups(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	items := sorted(s.groups)
	s.mu.Unlock()
	for _, g := range items {
		withoutKeys(g.Attestation)
	}
	page(w, r, items)
}

func (s *Server) getRegistration(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	reg, ok := s.regs[enrollment.Key(r.PathValue("id"))]
	if ok {
		reg = clone(reg)
	}
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, 404203, "registration not found")
		return
	}
	reply(w, http.StatusOK, reg)
}

func (s *Server) deleteRegistration(w http.ResponseWriter, r *http.Request) {
	k := enrollment.Key(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	reg, ok := s.regs[k]
	if !ok {
		apiError(w, http.StatusNotFound, 404203, "registration not found")
		return
	}
	if !precondition(w, r, reg.ETag, true) {
		return
	}
	delete(s.regs, k)
	w.WriteHeader(http.StatusNoContent)
}

// queryRegistrations filters by group through the registration ID prefix
// "<group>-", which is enough for a fake: it records no group membership.
func (s *Server) queryRegistrations(w http.ResponseWriter, r *http.Request) {
	group := enrollment.Key(r.PathValue("id"))
	s.mu.Lock()
	items := sorted(s.regs)
	s.mu.Unlock()
	if group != "" {
		var in []*enrollment.RegistrationState
		for _, reg := range items {
			if strings.HasPrefix(enrollment.Key(reg.RegistrationID), group+"-") {
				in = append(in, reg)
			}
		}
		items = in
	}
	page(w, r, items)
}

func (s *Server) listHubs(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	items := sorted(s.hubs)
	s.mu.Unlock()
	page(w, r, items)
}

func (s *Server) getHub(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h, ok := s.hubs[enrollment.Key(r.PathValue("id"))]
	if ok {
		h = clone(h)
	}
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, 404204, "hub not found")
		return
	}
	reply(w, http.StatusOK, h)
}

func (s *Server) putHub(w http.ResponseWriter, r *http.Request) {
	var h enrollment.Hub
	if !decode(w, r, &h) {
		return
	}
	if !strings.EqualFold(h.Name, r.PathValue("id")) {
		apiError(w, http.StatusBadRequest, 400004, "hub name does not match the path")
		return
	}
	if h.AllocationWeight == 0 {
		h.AllocationWeight = 1
	}
	if h.AllocationWeight < 0 || h.AllocationWeight > 1000 {
		apiError(w, http.StatusBadRequest, 400004, "allocationWeight must be 1 to 1000")
		return
	}
	k := enrollment.Key(h.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.hubs[k]
	stored := ""
	var ov *enrollment.Versioned
	if exists {
		stored, ov = old.ETag, &old.Versioned
	}
	if !precondition(w, r, stored, exists) {
		return
	}
	stamp(&h.Versioned, ov, s.nextETag())
	s.hubs[k] = clone(&h)
	reply(w, http.StatusOK, &h)
}

func (s *Server) deleteHub(w http.ResponseWriter, r *http.Request) {
	k := enrollment.Key(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hubs[k]
	if !ok {
		apiError(w, http.StatusNotFound, 404204, "hub not found")
		return
	}
	if !precondition(w, r, h.ETag, true) {
		return
	}
	delete(s.hubs, k)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listPolicies(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	items := sorted(s.policies)
	s.mu.Unlock()
	for _, p := range items {
		p.PrimaryKey, p.SecondaryKey = "", ""
	}
	reply(w, http.StatusOK, items)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	p, ok := s.policy1(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, 404205, "policy not found")
		return
	}
	p.PrimaryKey, p.SecondaryKey = "", ""
	reply(w, http.StatusOK, p)
}

func (s *Server) policy1(name string) (*enrollment.SharedAccessPolicy, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[enrollment.Key(name)]
	if !ok {
		return nil, false
	}
	return clone(p), true
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	var p enrollment.SharedAccessPolicy
	if !decode(w, r, &p) {
		return
	}
	if !strings.EqualFold(p.KeyName, r.PathValue("id")) {
		apiError(w, http.StatusBadRequest, 400004, "keyName does not match the path")
		return
	}
	rights, err := enrollment.NormalizeRights(p.Rights)
	if err != nil {
		apiError(w, http.StatusBadRequest, 400004, "%v", err)
		return
	}
	p.Rights = rights
	k := enrollment.Key(p.KeyName)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.policies[k]
	stored := ""
	var ov *enrollment.Versioned
	if exists {
		stored, ov = old.ETag, &old.Versioned
	}
	if !precondition(w, r, stored, exists) {
		return
	}
	if p.PrimaryKey == "" {
		p.PrimaryKey = newKey()
	}
	if p.SecondaryKey == "" {
		p.SecondaryKey = newKey()
	}
	stamp(&p.Versioned, ov, s.nextETag())
	s.policies[k] = clone(&p)
	p.PrimaryKey, p.SecondaryKey = "", ""
	reply(w, http.StatusOK, &p)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	k := enrollment.Key(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[k]
	if !ok {
		apiError(w, http.StatusNotFound, 404205, "policy not found")
		return
	}
	if !precondition(w, r, p.ETag, true) {
		return
	}
	delete(s.policies, k)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) policyKeys(w http.ResponseWriter, r *http.Request) {
	p, ok := s.policy1(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, 404205, "policy not found")
		return
	}
	reply(w, http.StatusOK, p)
}

func (s *Server) getSettings(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := s.settings
	s.mu.Unlock()
	reply(w, http.StatusOK, &st)
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request) {
	var st enrollment.Settings
	if !decode(w, r, &st) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !precondition(w, r, s.settings.ETag, true) {
		return
	}
	stamp(&st.Versioned, &s.settings.Versioned, s.nextETag())
	s.settings = st
	reply(w, http.StatusOK, &st)
}
