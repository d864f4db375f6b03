package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// docKind is what differs between the pages of individual enrollments
// and of enrollment groups; one implementation serves both, as one serves
// both in internal/api and internal/manage.
type docKind[T store.Document] struct {
	Noun, Plural string // "enrollment", "enrollments"
	Title        string // "Individual enrollments"
	Path         string // "/console/enrollments"
	// resource is the audit trail's name of the kind.
	resource   string
	individual bool
	docs       func(*Console) Documents[T]
	newDoc     func(id string) T
	id         func(T) string
	spec       func(T) *enrollment.Spec
	deviceID   func(T) *string // nil for groups
	validateID func(string) error
}

var enrollmentPages = &docKind[*enrollment.IndividualEnrollment]{
	Noun: "enrollment", Plural: "enrollments", Title: "Individual enrollments", Path: "/console/enrollments",
	resource: "enrollment", individual: true,
	docs: func(c *Console) Documents[*enrollment.IndividualEnrollment] { return c.cfg.Enrollments },
	newDoc: func(id string) *enrollment.IndividualEnrollment {
		return &enrollment.IndividualEnrollment{RegistrationID: id}
	},
	id:         func(e *enrollment.IndividualEnrollment) string { return e.RegistrationID },
	spec:       func(e *enrollment.IndividualEnrollment) *enrollment.Spec { return &e.Spec },
	deviceID:   func(e *enrollment.IndividualEnrollment) *string { return &e.DeviceID },
	validateID: enrollment.ValidateRegistrationID,
}

var groupPages = &docKind[*enrollment.EnrollmentGroup]{
	Noun: "group", Plural: "groups", Title: "Enrollment groups", Path: "/console/groups",
	resource:   "group",
	docs:       func(c *Console) Documents[*enrollment.EnrollmentGroup] { return c.cfg.Groups },
	newDoc:     func(id string) *enrollment.EnrollmentGroup { return &enrollment.EnrollmentGroup{EnrollmentGroupID: id} },
	id:         func(g *enrollment.EnrollmentGroup) string { return g.EnrollmentGroupID },
	spec:       func(g *enrollment.EnrollmentGroup) *enrollment.Spec { return &g.Spec },
	validateID: enrollment.ValidateGroupID,
}

func (k *docKind[T]) routes(c *Console, r chi.Router) {
	read, write := enrollment.RightEnrollmentRead, enrollment.RightEnrollmentWrite
	base := strings.TrimPrefix(k.Path, "/console")
	r.Get(base, c.need(read, k.list(c)))
	r.Post(base, c.need(write, k.create(c)))
	r.Get(base+"/{id}", c.need(read, k.show(c)))
	r.Post(base+"/{id}", c.need(write, k.update(c)))
	r.Post(base+"/{id}/status", c.need(write, k.setStatus(c)))
	r.Get(base+"/{id}/delete", c.need(write, k.confirmDelete(c)))
	r.Post(base+"/{id}/delete", c.need(write, k.delete(c)))
	// Reading keys needs EnrollmentWrite, as the API's read of keys does
	// (internal/api routes.go says why).
	r.Post(base+"/{id}/keys", c.need(write, k.reveal(c)))
}

// docRow is one document as the pages show it, keys left out.
type docRow struct {
	ID, DeviceID, Attestation, Credential, Status, HubHostName, AllocationPolicy, ETag string
	IoTHubs                                                                            string
	Created, Updated                                                                   *time.Time
	InitialTwin, FirmwarePolicy                                                        string
	Disabled                                                                           bool
}

func (k *docKind[T]) row(v T) docRow {
	s := k.spec(v)
	ver := v.Version()
	r := docRow{ID: k.id(v), Status: orDefault(s.ProvisioningStatus, enrollment.StatusEnabled), HubHostName: s.IoTHubHostName,
		AllocationPolicy: s.AllocationPolicy, ETag: ver.ETag, IoTHubs: strings.Join(s.IoTHubs, ", "),
		Created: ver.CreatedDateTimeUTC, Updated: ver.LastUpdatedDateTimeUTC}
	r.Disabled = r.Status == enrollment.StatusDisabled
	if k.deviceID != nil {
		r.DeviceID = *k.deviceID(v)
	}
	if a := s.Attestation; a != nil {
		r.Attestation = a.Type
		r.Credential = credential(a)
	}
	if s.InitialTwin != nil {
		b, _ := json.MarshalIndent(s.InitialTwin, "", "  ")
		r.InitialTwin = string(b)
	}
	if s.FirmwarePolicy != nil {
		b, _ := json.MarshalIndent(s.FirmwarePolicy, "", "  ")
		r.FirmwarePolicy = string(b)
	}
	return r
}

// credential describes the attestation without a secret: a TPM's key is
// public, a certificate's subject and thumbprint are public, symmetric
// keys are only said to exist.
func credential(a *enrollment.AttestationMechanism) string {
	switch {
	case a.SymmetricKey != nil:
		return "symmetric keys (hidden)"
	case a.TPM != nil:
		ek := a.TPM.EndorsementKey
		if len(ek) > 24 {
			ek = ek[:24] + "…"
		}
		return "endorsement key " + ek
	case a.X509 != nil && a.X509.CAReferences != nil:
		return "CA " + a.X509.CAReferences.Primary
	case a.X509 != nil:
		for _, cs := range []*enrollment.X509Certificates{a.X509.ClientCertificates, a.X509.SigningCertificates} {
			if cs != nil && cs.Primary != nil && cs.Primary.Info != nil {
				return cs.Primary.Info.SubjectName + " (SHA-256 " + short(cs.Primary.Info.SHA256Thumbprint) + ")"
			}
		}
	}
	return ""
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// docsPage is the list page's data.
type docsPage struct {
	Kind       any
	Rows       []docRow
	Query      string
	Next, Prev string
	// First is whether the page is the first one.
	First bool
	Form  url.Values
}

func (k *docKind[T]) kindInfo() map[string]any {
	return map[string]any{"Noun": k.Noun, "Plural": k.Plural, "Title": k.Title, "Path": k.Path, "Individual": k.individual}
}

// list shows a page of documents, or the one whose ID is searched for.
// Paging is the store's (a continuation token), so a page costs the same
// with a hundred documents or a million.
func (k *docKind[T]) list(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k.renderList(c, w, r, http.StatusOK, "", nil)
	}
}

func (k *docKind[T]) renderList(c *Console, w http.ResponseWriter, r *http.Request, status int, errMsg string, form url.Values) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	data := &docsPage{Kind: k.kindInfo(), Query: q, Form: form}
	if q != "" {
		v, err := k.docs(c).Get(ctx, q)
		switch {
		case err == nil:
			http.Redirect(w, r, k.Path+"/"+url.PathEscape(k.id(v)), http.StatusSeeOther)
			return
		case errors.Is(err, store.ErrNotFound) || errors.Is(err, enrollment.ErrInvalid):
			errMsg = "No " + k.Noun + " has the ID " + q + "."
		default:
			c.storeFault(w, r, err)
			return
		}
	} else {
		cont := r.URL.Query().Get("after")
		vs, next, err := k.docs(c).List(ctx, cont, c.cfg.PageSize)
		if err != nil {
			c.listFault(w, r, err)
			return
		}
		for _, v := range vs {
			data.Rows = append(data.Rows, k.row(v))
		}
		data.Next, data.First = next, cont == ""
	}
	c.render(w, r, status, "docs", &view{Title: k.Title, Nav: k.Plural, Error: errMsg, Data: data})
}

// docPage is the detail page's data.
type docPage struct {
	Kind any
	Doc  docRow
	// Keys are shown only after an explicit reveal.
	Keys *enrollment.SymmetricKeyAttestation
	// Registration is the device's record (individual enrollments).
	Registration *enrollment.Registration
	Form         url.Values
}

func (k *docKind[T]) show(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { k.renderDoc(c, w, r, http.StatusOK, "", nil, nil) }
}

func (k *docKind[T]) renderDoc(c *Console, w http.ResponseWriter, r *http.Request, status int, errMsg string, form url.Values, keys *enrollment.SymmetricKeyAttestation) {
	ctx := r.Context()
	v, err := k.docs(c).Get(ctx, pathParam(r, "id"))
	if err != nil {
		c.notFoundOr(w, r, err, "No "+k.Noun+" has the ID "+pathParam(r, "id")+".")
		return
	}
	data := &docPage{Kind: k.kindInfo(), Doc: k.row(v), Keys: keys, Form: form}
	if k.individual {
		if p, ok := principal.From(ctx); ok && p.HasRight(enrollment.RightRegistrationStatusRead) {
			if reg, err := c.cfg.Registrations.Registration(ctx, k.id(v)); err == nil {
				data.Registration = reg
			}
		}
	}
	c.render(w, r, status, "doc", &view{Title: capital(k.Noun) + " " + k.id(v), Nav: k.Plural, Error: errMsg, Data: data})
}

// create builds a document from the form and creates it (If-None-Match:
// *, so an existing one is never replaced from the create form).
func (k *docKind[T]) create(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := r.PostForm
		id := strings.TrimSpace(f.Get("id"))
		if err := k.validateID(id); err != nil {
			k.renderList(c, w, r, http.StatusBadRequest, err.Error(), f)
			return
		}
		v := k.newDoc(id)
		att, err := attestationFromForm(f, k.individual)
		if err != nil {
			k.renderList(c, w, r, http.StatusBadRequest, err.Error(), f)
			return
		}
		k.spec(v).Attestation = att
		if err := k.applyForm(v, f); err != nil {
			k.renderList(c, w, r, http.StatusBadRequest, err.Error(), f)
			return
		}
		if _, err := k.docs(c).Put(r.Context(), v, store.Condition{IfNoneMatch: true}); err != nil {
			if errors.Is(err, store.ErrConflict) {
				k.renderList(c, w, r, http.StatusConflict, "A "+k.Noun+" with the ID "+id+" already exists.", f)
				return
			}
			if msg, ok := userError(err); ok {
				k.renderList(c, w, r, http.StatusBadRequest, msg, f)
				return
			}
			c.storeFault(w, r, err)
			return
		}
		http.Redirect(w, r, k.Path+"/"+url.PathEscape(id)+"?created=1", http.StatusSeeOther)
	}
}

// applyForm sets the editable fields of v from the form and validates v.
func (k *docKind[T]) applyForm(v T, f url.Values) error {
	s := k.spec(v)
	if k.deviceID != nil {
		*k.deviceID(v) = strings.TrimSpace(f.Get("deviceId"))
	}
	s.ProvisioningStatus = orDefault(f.Get("status"), enrollment.StatusEnabled)
	s.IoTHubHostName = strings.TrimSpace(f.Get("iotHubHostName"))
	s.AllocationPolicy = strings.TrimSpace(f.Get("allocationPolicy"))
	s.IoTHubs = nil
	for _, h := range strings.Split(f.Get("iotHubs"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			s.IoTHubs = append(s.IoTHubs, h)
		}
	}
	s.InitialTwin = nil
	if t := strings.TrimSpace(f.Get("initialTwin")); t != "" {
		s.InitialTwin = new(enrollment.InitialTwin)
		if err := strictUnmarshal(t, s.InitialTwin); err != nil {
			return errors.New("initial twin: " + err.Error())
		}
	}
	s.FirmwarePolicy = nil
	if t := strings.TrimSpace(f.Get("firmwarePolicy")); t != "" {
		s.FirmwarePolicy = new(firmware.Policy)
		if err := strictUnmarshal(t, s.FirmwarePolicy); err != nil {
			return errors.New("firmware policy: " + err.Error())
		}
	}
	// The document's own validation: what the API's decoding applies.
	if val, ok := any(v).(interface{ Validate() error }); ok {
		return val.Validate()
	}
	return nil
}

func strictUnmarshal(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// attestationFromForm is the attestation of the create form.
func attestationFromForm(f url.Values, individual bool) (*enrollment.AttestationMechanism, error) {
	switch t := f.Get("attestation"); t {
	case enrollment.AttestationSymmetricKey, "":
		// Empty keys are generated by the use case, in the write's transaction.
		return &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}, nil
	case enrollment.AttestationTPM:
		if !individual {
			return nil, errors.New("TPM attestation is for individual enrollments only")
		}
		return &enrollment.AttestationMechanism{Type: t, TPM: &enrollment.TPMAttestation{EndorsementKey: strings.TrimSpace(f.Get("endorsementKey"))}}, nil
	case enrollment.AttestationX509:
		x := &enrollment.X509Attestation{}
		if ref := strings.TrimSpace(f.Get("caReference")); ref != "" {
			x.CAReferences = &enrollment.X509CAReferences{Primary: ref}
		} else {
			certs := &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: strings.TrimSpace(f.Get("certificate"))}}
			if individual {
				x.ClientCertificates = certs
			} else {
				x.SigningCertificates = certs
			}
		}
		return &enrollment.AttestationMechanism{Type: t, X509: x}, nil
	default:
		return nil, errors.New("unknown attestation type " + t)
	}
}

// update saves the edit form under If-Match: the ETag the form was
// rendered from, so a change someone made meanwhile is never overwritten.
func (k *docKind[T]) update(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := r.PostForm
		v, err := k.docs(c).Get(r.Context(), pathParam(r, "id"))
		if err != nil {
			c.notFoundOr(w, r, err, "This "+k.Noun+" no longer exists.")
			return
		}
		if err := k.applyForm(v, f); err != nil {
			k.renderDoc(c, w, r, http.StatusBadRequest, err.Error(), f, nil)
			return
		}
		k.put(c, w, r, v, f.Get("etag"), "?saved=1")
	}
}

func (k *docKind[T]) put(c *Console, w http.ResponseWriter, r *http.Request, v T, etag, then string) {
	if etag == "" {
		k.renderDoc(c, w, r, http.StatusBadRequest, "The form has no version (ETag); reload the page.", nil, nil)
		return
	}
	if _, err := k.docs(c).Put(r.Context(), v, store.Condition{IfMatch: etag}); err != nil {
		switch {
		case errors.Is(err, store.ErrPreconditionFailed):
			k.renderDoc(c, w, r, http.StatusConflict, conflictMessage(k.Noun), nil, nil)
		default:
			if msg, ok := userError(err); ok {
				k.renderDoc(c, w, r, http.StatusBadRequest, msg, r.PostForm, nil)
				return
			}
			c.storeFault(w, r, err)
		}
		return
	}
	http.Redirect(w, r, k.Path+"/"+url.PathEscape(k.id(v))+then, http.StatusSeeOther)
}

func conflictMessage(noun string) string {
	return "Someone changed this " + noun + " after you opened it, so your change was not saved. The page now shows the current version; make your change again."
}

// setStatus enables or disables the document.
func (k *docKind[T]) setStatus(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := r.PostForm.Get("status")
		if st != enrollment.StatusEnabled && st != enrollment.StatusDisabled {
			c.fail(w, r, http.StatusBadRequest, "The status must be enabled or disabled.")
			return
		}
		v, err := k.docs(c).Get(r.Context(), pathParam(r, "id"))
		if err != nil {
			c.notFoundOr(w, r, err, "This "+k.Noun+" no longer exists.")
			return
		}
		k.spec(v).ProvisioningStatus = st
		k.put(c, w, r, v, r.PostForm.Get("etag"), "?saved=1")
	}
}

func (k *docKind[T]) confirmDelete(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := k.docs(c).Get(r.Context(), pathParam(r, "id"))
		if err != nil {
			c.notFoundOr(w, r, err, "No "+k.Noun+" has the ID "+pathParam(r, "id")+".")
			return
		}
		c.render(w, r, http.StatusOK, "confirm", &view{Title: "Delete " + k.Noun + " " + k.id(v), Nav: k.Plural, Data: map[string]string{
			"What":   k.Noun + " " + k.id(v),
			"Action": k.Path + "/" + url.PathEscape(k.id(v)) + "/delete",
			"Back":   k.Path + "/" + url.PathEscape(k.id(v)),
			"ETag":   v.Version().ETag,
			"Note":   "Devices of it can no longer register, and the certificates issued through it are revoked.",
		}})
	}
}

func (k *docKind[T]) delete(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		etag := r.PostForm.Get("etag")
		if etag == "" {
			c.fail(w, r, http.StatusBadRequest, "The form has no version (ETag); reload the page.")
			return
		}
		err := k.docs(c).Delete(r.Context(), pathParam(r, "id"), etag)
		switch {
		case err == nil:
			http.Redirect(w, r, k.Path+"?deleted=1", http.StatusSeeOther)
		case errors.Is(err, store.ErrPreconditionFailed):
			k.renderDoc(c, w, r, http.StatusConflict, "Someone changed this "+k.Noun+" after you opened it, so it was not deleted. Check the current version below.", nil, nil)
		default:
			c.notFoundOr(w, r, err, "This "+k.Noun+" no longer exists.")
		}
	}
}

// reveal shows the symmetric keys, and records that they were read in
// the audit trail, as the API's POST .../attestationmechanism does.
func (k *docKind[T]) reveal(c *Console) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		v, err := k.docs(c).Get(ctx, pathParam(r, "id"))
		if err != nil {
			c.notFoundOr(w, r, err, "No "+k.Noun+" has the ID "+pathParam(r, "id")+".")
			return
		}
		a := k.spec(v).Attestation
		if a == nil || a.SymmetricKey == nil {
			k.renderDoc(c, w, r, http.StatusBadRequest, "This "+k.Noun+" has no symmetric keys to reveal.", nil, nil)
			return
		}
		if c.cfg.KeyReads != nil {
			c.cfg.KeyReads.Add(audit.Event{Action: k.resource + ".read-keys", Outcome: audit.OutcomeSuccess, Actor: audit.ActorFrom(ctx),
				Resource: k.resource + "/" + k.id(v), Source: r.RemoteAddr, Transport: "console"})
		}
		c.log.InfoContext(ctx, "audit", "action", "read-keys", "resource", k.resource, "id", k.id(v), "actor", audit.ActorFrom(ctx))
		keys := *a.SymmetricKey
		k.renderDoc(c, w, r, http.StatusOK, "", nil, &keys)
	}
}
