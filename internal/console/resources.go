package console

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// deviceScan bounds the records a search by device ID reads: records are
// keyed by registration ID and have no device ID index, so that search
// looks at the first pages only and says so.
const deviceScan = 1000

type regRow struct {
	ID, DeviceID, Hub, Status, Attestation, Group, ETag string
	Updated                                             *time.Time
}

func regRowOf(r *enrollment.Registration) regRow {
	return regRow{ID: r.RegistrationID, DeviceID: r.DeviceID, Hub: r.AssignedHub, Status: r.Status, Attestation: r.AttestationType,
		Group: r.EnrollmentGroupID, ETag: r.ETag, Updated: r.LastUpdatedDateTimeUTC}
}

type regsPage struct {
	Rows           []regRow
	Q, Field, Next string
	First          bool
	Note           string
}

// registrationsPage lists records a page at a time, by hub through the
// hub index, or finds one by registration ID or device ID.
func (c *Console) registrationsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	qv := r.URL.Query()
	q, field, cont := strings.TrimSpace(qv.Get("q")), qv.Get("by"), qv.Get("after")
	data := &regsPage{Q: q, Field: orDefault(field, "id"), First: cont == ""}
	var recs []*enrollment.Registration
	var err error
	switch {
	case q == "":
		recs, data.Next, err = c.cfg.Registrations.Registrations(ctx, "", cont, c.cfg.PageSize)
	case data.Field == "group":
		recs, data.Next, err = c.cfg.Registrations.Registrations(ctx, q, cont, c.cfg.PageSize)
	case data.Field == "hub":
		recs, data.Next, err = c.cfg.Store.Registrations.ListBy(ctx, store.IndexRegistrationsByHub, q, cont, c.cfg.PageSize)
	case data.Field == "device":
		recs, err = c.findDevice(r, q)
		data.Note = "Device IDs are searched in the first " + strconv.Itoa(deviceScan) + " records; search by registration ID to find any record."
	default:
		var rec *enrollment.Registration
		rec, err = c.cfg.Registrations.Registration(ctx, q)
		if err == nil {
			http.Redirect(w, r, "/console/registrations/"+url.PathEscape(rec.RegistrationID), http.StatusSeeOther)
			return
		}
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, enrollment.ErrInvalid) {
			err = nil
			data.Note = "No registration record has the ID " + q + "."
		}
	}
	if err != nil {
		c.listFault(w, r, err)
		return
	}
	for _, rec := range recs {
		data.Rows = append(data.Rows, regRowOf(rec))
	}
	c.render(w, r, http.StatusOK, "registrations", &view{Title: "Registration records", Nav: "registrations", Data: data})
}

func (c *Console) findDevice(r *http.Request, deviceID string) ([]*enrollment.Registration, error) {
	var out []*enrollment.Registration
	cont := ""
	for scanned := 0; scanned < deviceScan; {
		recs, next, err := c.cfg.Registrations.Registrations(r.Context(), "", cont, 1000)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			if strings.EqualFold(rec.DeviceID, deviceID) {
				out = append(out, rec)
			}
		}
		scanned += len(recs)
		if next == "" {
			break
		}
		cont = next
	}
	return out, nil
}

type certRow struct {
	Serial, Subject string
	Expires         time.Time
}

type regPage struct {
	Rec   regRow
	Error string
	// Issued are the operational certificates zdps issued the device
	// (CN = device ID), newest first.
	Issued []certRow
	// Presented summarises the certificate the device presented (X.509).
	Presented *enrollment.X509CertificateInfo
	Signing   *enrollment.X509CertificateInfo
	Twin      string
}

func (c *Console) registrationPage(w http.ResponseWriter, r *http.Request) {
	c.renderRegistration(w, r, http.StatusOK, "")
}

func (c *Console) renderRegistration(w http.ResponseWriter, r *http.Request, status int, msg string) {
	rec, err := c.cfg.Registrations.Registration(r.Context(), pathParam(r, "id"))
	if err != nil {
		c.notFoundOr(w, r, err, "No registration record has the ID "+pathParam(r, "id")+".")
		return
	}
	data := &regPage{Rec: regRowOf(rec), Error: rec.ErrorMessage}
	for _, s := range rec.CertificateSerials {
		data.Issued = append(data.Issued, certRow{Serial: s, Subject: "CN=" + rec.DeviceID, Expires: rec.CertificateExpiry[strings.ToLower(s)]})
	}
	slices.SortFunc(data.Issued, func(a, b certRow) int { return b.Expires.Compare(a.Expires) })
	if rec.X509 != nil {
		data.Presented, data.Signing = rec.X509.CertificateInfo, rec.X509.SigningCertificateInfo
	}
	if len(rec.InitialTwin) > 0 {
		data.Twin = string(rec.InitialTwin)
	}
	c.render(w, r, status, "registration", &view{Title: "Registration " + rec.RegistrationID, Nav: "registrations", Error: msg, Data: data})
}

// revokeRegistration deletes the record, which revokes its certificates
// in the same transaction (the API's DELETE /registrations/{id}).
func (c *Console) revokeRegistration(w http.ResponseWriter, r *http.Request) {
	etag := r.PostForm.Get("etag")
	if etag == "" {
		c.fail(w, r, http.StatusBadRequest, "The form has no version (ETag); reload the page.")
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		c.renderRegistration(w, r, http.StatusBadRequest, "Tick the confirmation box to revoke a registration.")
		return
	}
	err := c.cfg.Registrations.DeleteRegistration(r.Context(), pathParam(r, "id"), etag)
	switch {
	case err == nil:
		http.Redirect(w, r, "/console/registrations?revoked="+url.QueryEscape(pathParam(r, "id")), http.StatusSeeOther)
	case errors.Is(err, store.ErrPreconditionFailed):
		c.renderRegistration(w, r, http.StatusConflict, "The device registered again after you opened this page, so nothing was revoked. Check the current record below.")
	default:
		c.notFoundOr(w, r, err, "This registration record no longer exists.")
	}
}

type hubsPage struct {
	Hubs        []*enrollment.Hub
	Next        string
	First       bool
	Explain     *dps.Explanation
	ExplainID   string
	ExplainErr  string
	CanExplain  bool
	HubStatuses []string
}

func (c *Console) hubsPage(w http.ResponseWriter, r *http.Request) {
	c.renderHubs(w, r, http.StatusOK, "", nil)
}

func (c *Console) renderHubs(w http.ResponseWriter, r *http.Request, status int, msg string, data *hubsPage) {
	if data == nil {
		data = &hubsPage{}
	}
	cont := r.URL.Query().Get("after")
	hs, next, err := c.cfg.Store.Hubs.List(r.Context(), cont, c.cfg.PageSize)
	if err == nil {
		err = c.counts.Fill(r.Context(), hs)
	}
	if err != nil {
		c.listFault(w, r, err)
		return
	}
	data.Hubs, data.Next, data.First = hs, next, cont == ""
	data.CanExplain = c.cfg.Explain != nil
	data.HubStatuses = []string{enrollment.HubHealthy, enrollment.HubDraining, enrollment.HubUnhealthy}
	c.render(w, r, status, "hubs", &view{Title: "Linked hubs", Nav: "hubs", Error: msg, Data: data})
}

// updateHub saves a hub's weight, capacity and status (drain is status
// draining) under If-Match.
func (c *Console) updateHub(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	h, err := c.cfg.Hubs.Hub(r.Context(), pathParam(r, "name"))
	if err != nil {
		c.notFoundOr(w, r, err, "No hub is named "+pathParam(r, "name")+".")
		return
	}
	if v := strings.TrimSpace(f.Get("weight")); v != "" {
		if h.AllocationWeight, err = strconv.Atoi(v); err != nil {
			c.renderHubs(w, r, http.StatusBadRequest, "The weight must be a whole number.", nil)
			return
		}
	}
	if v := strings.TrimSpace(f.Get("capacity")); v != "" {
		if h.Capacity, err = strconv.Atoi(v); err != nil {
			c.renderHubs(w, r, http.StatusBadRequest, "The capacity must be a whole number (0 for unlimited).", nil)
			return
		}
	}
	if v := f.Get("status"); v != "" {
		h.Status = v
		if v == enrollment.HubHealthy {
			h.Status = ""
		}
	}
	h.DeviceCount = nil
	if err := h.Validate(); err != nil {
		c.renderHubs(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if f.Get("etag") == "" {
		c.renderHubs(w, r, http.StatusBadRequest, "The form has no version (ETag); reload the page.", nil)
		return
	}
	if _, err := c.cfg.Hubs.PutHub(r.Context(), h, store.Condition{IfMatch: f.Get("etag")}); err != nil {
		if errors.Is(err, store.ErrPreconditionFailed) {
			c.renderHubs(w, r, http.StatusConflict, conflictMessage("hub"), nil)
			return
		}
		c.storeFault(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/hubs?saved="+url.QueryEscape(h.Name), http.StatusSeeOther)
}

func (c *Console) explain(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.PostForm.Get("registrationId"))
	data := &hubsPage{ExplainID: id}
	if c.cfg.Explain == nil {
		c.renderHubs(w, r, http.StatusServiceUnavailable, "Allocation explain is not available on this instance.", data)
		return
	}
	if err := enrollment.ValidateRegistrationID(id); err != nil {
		data.ExplainErr = err.Error()
		c.renderHubs(w, r, http.StatusBadRequest, "", data)
		return
	}
	x, err := c.cfg.Explain(r.Context(), dps.ExplainRequest{RegistrationID: id, EnrollmentGroupID: strings.TrimSpace(r.PostForm.Get("group"))})
	if err != nil {
		// The explainer's refusals name the device and the enrollment it
		// looked for; they hold no secret.
		data.ExplainErr = err.Error()
		c.renderHubs(w, r, http.StatusOK, "", data)
		return
	}
	data.Explain = x
	c.renderHubs(w, r, http.StatusOK, "", data)
}

type caCertInfo struct {
	Subject, Issuer, Serial string
	NotAfter                time.Time
	DaysLeft                int
}

func certInfo(cert *x509.Certificate, now time.Time) *caCertInfo {
	if cert == nil {
		return nil
	}
	return &caCertInfo{Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Serial: cert.SerialNumber.Text(16),
		NotAfter: cert.NotAfter, DaysLeft: int(cert.NotAfter.Sub(now).Hours() / 24)}
}

type caPage struct {
	Root, Intermediate *caCertInfo
	Certs              []*enrollment.CACertificate
	Next               string
	// Code is a verification code just issued, for the certificate named
	// CodeFor.
	Code, CodeFor string
}

func (c *Console) caPage(w http.ResponseWriter, r *http.Request) {
	c.renderCA(w, r, http.StatusOK, "", nil)
}

func (c *Console) renderCA(w http.ResponseWriter, r *http.Request, status int, msg string, data *caPage) {
	if data == nil {
		data = &caPage{}
	}
	if c.cfg.CA != nil {
		data.Root, data.Intermediate = certInfo(c.cfg.CA.Root(), c.now()), certInfo(c.cfg.CA.Intermediate(), c.now())
	}
	certs, next, err := c.cfg.Certificates.CACertificates(r.Context(), r.URL.Query().Get("after"), c.cfg.PageSize)
	if err != nil {
		c.storeFault(w, r, err)
		return
	}
	for _, ct := range certs {
		data.Certs = append(data.Certs, ct.Redacted())
	}
	data.Next = next
	c.render(w, r, status, "ca", &view{Title: "Certificate authority", Nav: "ca", Error: msg, Data: data})
}

func (c *Console) addCACertificate(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	ct := &enrollment.CACertificate{Name: strings.TrimSpace(f.Get("name")), Certificate: strings.TrimSpace(f.Get("certificate"))}
	if err := enrollment.ValidateCACertificateName(ct.Name); err != nil {
		c.renderCA(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if err := ct.Validate(); err != nil {
		c.renderCA(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if _, err := c.cfg.Certificates.PutCACertificate(r.Context(), ct, store.Condition{IfNoneMatch: true}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			c.renderCA(w, r, http.StatusConflict, "A CA certificate named "+ct.Name+" already exists.", nil)
			return
		}
		if msg, ok := userError(err); ok {
			c.renderCA(w, r, http.StatusBadRequest, msg, nil)
			return
		}
		c.storeFault(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/ca?added="+url.QueryEscape(ct.Name), http.StatusSeeOther)
}

// verificationCode issues the code the operator signs with the CA's key
// to prove possession (the API's POST .../verificationCode).
func (c *Console) verificationCode(w http.ResponseWriter, r *http.Request) {
	ct, err := c.cfg.Certificates.VerificationCode(r.Context(), pathParam(r, "name"))
	if err != nil {
		c.notFoundOr(w, r, err, "No CA certificate is named "+pathParam(r, "name")+".")
		return
	}
	c.renderCA(w, r, http.StatusOK, "", &caPage{Code: ct.VerificationCode, CodeFor: ct.Name})
}

func (c *Console) verifyCACertificate(w http.ResponseWriter, r *http.Request) {
	blk, _ := pem.Decode([]byte(r.PostForm.Get("proof")))
	if blk == nil || blk.Type != "CERTIFICATE" {
		c.renderCA(w, r, http.StatusBadRequest, "Paste the proof certificate as PEM (-----BEGIN CERTIFICATE-----).", nil)
		return
	}
	proof, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		c.renderCA(w, r, http.StatusBadRequest, "The proof is not a valid certificate: "+err.Error(), nil)
		return
	}
	if _, err := c.cfg.Certificates.VerifyCACertificate(r.Context(), pathParam(r, "name"), proof); err != nil {
		if msg, ok := userError(err); ok {
			c.renderCA(w, r, http.StatusBadRequest, msg, nil)
			return
		}
		c.notFoundOr(w, r, err, "No CA certificate is named "+pathParam(r, "name")+".")
		return
	}
	http.Redirect(w, r, "/console/ca?verified="+url.QueryEscape(pathParam(r, "name")), http.StatusSeeOther)
}

func (c *Console) deleteCACertificate(w http.ResponseWriter, r *http.Request) {
	etag := r.PostForm.Get("etag")
	if etag == "" || r.PostForm.Get("confirm") != "yes" {
		c.renderCA(w, r, http.StatusBadRequest, "Tick the confirmation box to delete a CA certificate.", nil)
		return
	}
	err := c.cfg.Certificates.DeleteCACertificate(r.Context(), pathParam(r, "name"), etag)
	switch {
	case err == nil:
		http.Redirect(w, r, "/console/ca?deleted="+url.QueryEscape(pathParam(r, "name")), http.StatusSeeOther)
	case errors.Is(err, store.ErrPreconditionFailed):
		c.renderCA(w, r, http.StatusConflict, conflictMessage("CA certificate"), nil)
	default:
		if msg, ok := userError(err); ok {
			c.renderCA(w, r, http.StatusBadRequest, msg, nil)
			return
		}
		c.notFoundOr(w, r, err, "No CA certificate is named "+pathParam(r, "name")+".")
	}
}

// pretty indents JSON for a page.
func pretty(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}
