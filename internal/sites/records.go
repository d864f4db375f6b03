package sites

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/check"
)

// Bounds of a push of records.
const (
	MaxRecordsPerPush = 100
	maxCertificate    = 16 << 10
	maxETag           = 128
	// keepSerials is how many certificate serials a pushed record keeps.
	keepSerials = 4
)

// RecordRefused is dps.RecordRefused.
const RecordRefused = dps.RecordRefused

// BucketConflicts remembers the answer to each conflicting push, by
// "<registration key>/<gateway key>/<etag>", so a repeated push answers the
// same without a second alert or revocation.
const BucketConflicts store.Bucket = "site-conflicts"

// reasonKeyCompromise is the CRL reason of the conflict rule's loser.
const reasonKeyCompromise = 1

// winnerCentral names central as the winner of a conflict.
const winnerCentral = "central"

// IngestRecords stores the records gw pushes, each in its own
// transaction, and answers what became of each, in order. An error is
// returned only for a fault of this zdps (store down); a bad record is a
// refused result.
//
// The conflict rule: a registration ID already held by another registrar
// (central itself, or another gateway) keeps the earliest registration
// (createdDateTimeUtc at the gateway, the record's creation here; a tie
// keeps the one stored). The loser's certificates are revoked, the
// losing gateway is told through its feed (a registration delete), and
// the conflict is audited (registration.conflict, which the detector
// raises as a cloned-credential alert).
func (s *Service) IngestRecords(ctx context.Context, gw *Gateway, recs []dps.GatewayRecord) ([]dps.GatewayRecordResult, error) {
	if len(recs) > MaxRecordsPerPush {
		return nil, invalid("at most %d records per push, not %d", MaxRecordsPerPush, len(recs))
	}
	ctx = audit.WithActor(ctx, gw.Actor())
	out := make([]dps.GatewayRecordResult, len(recs))
	for i := range recs {
		in, err := decodeRecord(&recs[i])
		if err != nil {
			out[i] = dps.GatewayRecordResult{RegistrationID: in.RegistrationID, Status: RecordRefused, Error: err.Error()}
			continue
		}
		res, err := s.ingest(ctx, gw, in)
		switch {
		case errors.Is(err, enrollment.ErrInvalid):
			out[i] = dps.GatewayRecordResult{RegistrationID: in.RegistrationID, Status: RecordRefused, Error: err.Error()}
		case err != nil:
			return nil, err
		default:
			out[i] = res
		}
	}
	return out, nil
}

// incoming is a decoded pushed record.
type incoming struct {
	enrollment.RegistrationState
	GroupID         string
	AttestationType string
	Cert            *x509.Certificate
	Serial          string
}

// DecodeRecord checks one pushed record's shape (bounded, strict); the
// registration ID is returned even when the rest is refused.
func decodeRecord(r *dps.GatewayRecord) (incoming, error) {
	var in incoming
	if err := check.StrictUnmarshal(r.Registration, &in.RegistrationState); err != nil {
		return in, invalid("registration: %v", err)
	}
	st := &in.RegistrationState
	if err := enrollment.ValidateRegistrationID(st.RegistrationID); err != nil {
		return in, err
	}
	if st.DeviceID == "" {
		st.DeviceID = st.RegistrationID
	}
	if err := enrollment.ValidateDeviceID(st.DeviceID); err != nil {
		return in, err
	}
	switch {
	case st.ETag == "" || len(st.ETag) > maxETag:
		return in, invalid("registration.etag is required (at most %d characters)", maxETag)
	case st.CreatedDateTimeUTC == nil || st.CreatedDateTimeUTC.IsZero():
		return in, invalid("registration.createdDateTimeUtc is required")
	case st.Status != enrollment.RegistrationAssigned:
		return in, invalid("registration.status must be %s, not %q", enrollment.RegistrationAssigned, st.Status)
	}
	if err := enrollment.ValidateHostName(st.AssignedHub); err != nil {
		return in, invalid("registration.assignedHub: %v", err)
	}
	if len(st.ErrorMessage) > 1024 || len(st.InitialTwin) > 64<<10 {
		return in, invalid("registration: a field too large")
	}
	if r.EnrollmentGroupID != "" {
		if err := enrollment.ValidateGroupID(r.EnrollmentGroupID); err != nil {
			return in, err
		}
	}
	switch r.AttestationType {
	case "", enrollment.AttestationSymmetricKey, enrollment.AttestationX509, enrollment.AttestationTPM:
	default:
		return in, invalid("attestationType %q", r.AttestationType)
	}
	in.GroupID, in.AttestationType = r.EnrollmentGroupID, r.AttestationType
	if r.Certificate != "" {
		if len(r.Certificate) > maxCertificate*4/3+4 {
			return in, invalid("certificate too large")
		}
		der, err := base64.StdEncoding.DecodeString(r.Certificate)
		if err != nil {
			return in, invalid("certificate is not base64: %v", err)
		}
		if in.Cert, err = x509.ParseCertificate(der); err != nil {
			return in, invalid("certificate: %v", err)
		}
		if in.Cert.IsCA {
			return in, invalid("certificate is a CA")
		}
		in.Serial = fmt.Sprintf("%032x", in.Cert.SerialNumber)
	}
	return in, nil
}

func (s *Service) ingest(ctx context.Context, gw *Gateway, in incoming) (dps.GatewayRecordResult, error) {
	res := dps.GatewayRecordResult{RegistrationID: in.RegistrationID}
	now := s.now().UTC()
	conflictKey := enrollment.Key(in.RegistrationID) + "/" + enrollment.Key(gw.RegistrationID) + "/" + in.ETag
	err := s.st.Backend.Update(ctx, func(tx store.Tx) error {
		res = dps.GatewayRecordResult{RegistrationID: in.RegistrationID}
		if it, err := tx.Get(ctx, BucketConflicts, conflictKey); err == nil {
			var a conflictAnswer
			err := json.Unmarshal(it.Value, &a)
			res = a.GatewayRecordResult
			return err
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := s.ofSite(ctx, tx, gw, in); err != nil {
			return err
		}
		var cert *enrollment.Certificate
		if in.Cert != nil {
			var err error
			if cert, err = s.verifyLeaf(ctx, tx, gw, in); err != nil {
				return err
			}
		}
		recs := s.st.Registrations.In(tx)
		old, err := recs.Get(ctx, in.RegistrationID)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if exists && !strings.EqualFold(old.Gateway, gw.RegistrationID) {
			return s.conflict(ctx, tx, gw, in, old, cert, conflictKey, &res)
		}
		if exists && old.GatewayETag == in.ETag {
			res.Status = dps.RecordDuplicate
			return nil
		}
		if cert != nil {
			if err := s.rev.StoreCertificateTx(ctx, tx, cert); err != nil {
				return err
			}
		}
		rec := s.record(gw, in, old, cert)
		cond := store.Condition{IfNoneMatch: true}
		if exists {
			cond = store.Condition{IfMatch: old.ETag}
		}
		if _, err := recs.Put(ctx, rec, cond); err != nil {
			return err
		}
		res.Status = dps.RecordStored
		return nil
	})
	if err != nil {
		return res, err
	}
	if res.Status == dps.RecordConflict {
		s.log.WarnContext(ctx, "registration conflict", "registration_id", in.RegistrationID, "gateway", gw.RegistrationID, "winner", res.Winner, "at", now)
	}
	return res, nil
}

// ofSite refuses a record whose enrollment is not of gw's site: the
// individual enrollment of its ID if there is one, else its group.
func (s *Service) ofSite(ctx context.Context, tx store.Tx, gw *Gateway, in incoming) error {
	e, err := s.st.Enrollments.In(tx).Get(ctx, in.RegistrationID)
	switch {
	case err == nil:
		if e.Site != gw.Site {
			return invalid("%q is not an enrollment of site %q", in.RegistrationID, gw.Site)
		}
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if in.GroupID == "" {
		return invalid("%q has no enrollment here", in.RegistrationID)
	}
	g, err := s.st.Groups.In(tx).Get(ctx, in.GroupID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return invalid("group %q does not exist here", in.GroupID)
	case err != nil:
		return err
	case g.Site != gw.Site:
		return invalid("group %q is not of site %q", in.GroupID, gw.Site)
	}
	return nil
}

// verifyLeaf checks that a pushed certificate was issued by one of gw's
// site CAs for the record's device (subject O=zdps-site-<site>,
// CN=device ID), as of its issuance, and returns it as a stored
// certificate.
func (s *Service) verifyLeaf(ctx context.Context, tx store.Tx, gw *Gateway, in incoming) (*enrollment.Certificate, error) {
	leaf := in.Cert
	if leaf.Subject.CommonName != in.DeviceID || !slices.Equal(leaf.Subject.Organization, []string{"zdps-site-" + gw.Site}) {
		return nil, invalid("certificate subject %q is not O=zdps-site-%s, CN=%s", leaf.Subject.String(), gw.Site, in.DeviceID)
	}
	cas, err := siteCAs(ctx, tx, gw.RegistrationID)
	if err != nil {
		return nil, err
	}
	for _, ca := range cas {
		if len(ca.Chain) < 2 {
			continue
		}
		sub, err := x509.ParseCertificate(ca.Chain[0])
		if err != nil || leaf.CheckSignatureFrom(sub) != nil {
			continue
		}
		if ca.RevokedAt != nil && !leaf.NotBefore.Before(*ca.RevokedAt) {
			return nil, invalid("certificate was issued after site CA %s was revoked", ca.Serial)
		}
		roots, inters := x509.NewCertPool(), x509.NewCertPool()
		inters.AddCert(sub)
		for i, der := range ca.Chain[1:] {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("sites: stored site CA chain: %w", err)
			}
			if i == len(ca.Chain)-2 {
				roots.AddCert(c)
			} else {
				inters.AddCert(c)
			}
		}
		at := leaf.NotBefore
		if at.Before(sub.NotBefore) {
			at = sub.NotBefore
		}
		at = at.Add(time.Second)
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return nil, invalid("certificate does not verify under site CA %s: %v", ca.Serial, err)
		}
		chain := make([][]byte, 0, len(chains[0]))
		for _, c := range chains[0] {
			chain = append(chain, c.Raw)
		}
		return &enrollment.Certificate{Serial: in.Serial, RegistrationID: in.RegistrationID, DeviceID: in.DeviceID,
			NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Chain: chain}, nil
	}
	return nil, invalid("certificate was not signed by a site CA of gateway %q", gw.RegistrationID)
}

// record is the record central stores for a pushed one.
func (s *Service) record(gw *Gateway, in incoming, old *enrollment.Registration, cert *enrollment.Certificate) *enrollment.Registration {
	created := in.CreatedDateTimeUTC.UTC()
	r := &enrollment.Registration{
		RegistrationID: in.RegistrationID, DeviceID: in.DeviceID, AssignedHub: in.AssignedHub, InitialHub: in.AssignedHub,
		Status: in.Status, Substatus: in.Substatus, AttestationType: in.AttestationType, EnrollmentGroupID: in.GroupID,
		DICE: in.DICE, InitialTwin: in.InitialTwin,
		Site: gw.Site, Gateway: gw.RegistrationID, GatewayETag: in.ETag, RegisteredAt: &created,
	}
	if old != nil && strings.EqualFold(old.Gateway, gw.RegistrationID) {
		r.InitialHub = old.InitialHub
		r.CertificateSerials = slices.Clone(old.CertificateSerials)
		r.CertificateExpiry = map[string]time.Time{}
		for k, v := range old.CertificateExpiry {
			r.CertificateExpiry[k] = v
		}
		if old.RegisteredAt != nil {
			r.RegisteredAt = old.RegisteredAt
		}
	}
	if cert != nil && !slices.Contains(r.CertificateSerials, cert.Serial) {
		r.CertificateSerials = append(r.CertificateSerials, cert.Serial)
		if r.CertificateExpiry == nil {
			r.CertificateExpiry = map[string]time.Time{}
		}
		r.CertificateExpiry[cert.Serial] = cert.NotAfter
		if n := len(r.CertificateSerials); n > keepSerials {
			for _, gone := range r.CertificateSerials[:n-keepSerials] {
				delete(r.CertificateExpiry, gone)
			}
			r.CertificateSerials = r.CertificateSerials[n-keepSerials:]
		}
	}
	return r
}

// conflict applies the conflict rule to a pushed record whose ID old,
// registered elsewhere, holds.
func (s *Service) conflict(ctx context.Context, tx store.Tx, gw *Gateway, in incoming, old *enrollment.Registration, cert *enrollment.Certificate, key string, res *dps.GatewayRecordResult) error {
	oldAt := old.CreatedDateTimeUTC
	if old.RegisteredAt != nil {
		oldAt = old.RegisteredAt
	}
	other := old.Gateway
	if other == "" {
		other = winnerCentral
	}
	res.Status = dps.RecordConflict
	incomingWins := oldAt != nil && in.CreatedDateTimeUTC.Before(*oldAt)
	if incomingWins {
		revoked, err := s.unrevoked(ctx, tx, in.RegistrationID)
		if err != nil {
			return err
		}
		if _, err := s.rev.RevokeRegistrationTx(ctx, tx, in.RegistrationID, reasonKeyCompromise); err != nil {
			return err
		}
		if old.Gateway != "" {
			if err := Append(ctx, tx, old.Site, dps.ChangeRegistration, old.RegistrationID, dps.ChangeDelete); err != nil {
				return err
			}
		}
		if cert != nil {
			if err := s.rev.StoreCertificateTx(ctx, tx, cert); err != nil {
				return err
			}
		}
		if _, err := s.st.Registrations.In(tx).Put(ctx, s.record(gw, in, nil, cert), store.Condition{IfMatch: old.ETag}); err != nil {
			return err
		}
		res.Winner, res.Revoked = gw.RegistrationID, revoked
	} else {
		if cert != nil {
			at := s.now().UTC()
			cert.RevokedAt, cert.RevocationReason = &at, reasonKeyCompromise
			if err := s.rev.StoreCertificateTx(ctx, tx, cert); err != nil {
				return err
			}
			res.Revoked = []string{cert.Serial}
		}
		if err := Append(ctx, tx, gw.Site, dps.ChangeRegistration, in.RegistrationID, dps.ChangeDelete); err != nil {
			return err
		}
		res.Winner = other
	}
	details := map[string]string{
		"site": gw.Site, "gateway": gw.RegistrationID, "other": other, "otherSite": old.Site,
		"winner": res.Winner, "rule": "earliest registration wins",
		"revoked": strings.Join(res.Revoked, ","),
	}
	if in.GroupID != "" {
		details[detect.DetailGroup] = in.GroupID
	}
	if err := s.rec.Record(ctx, tx, audit.Event{Action: detect.ActionRegistrationConflict, Outcome: audit.OutcomeRefused, Reason: detect.RuleClonedCredential,
		Actor: gw.Actor(), Resource: "registration/" + enrollment.Key(in.RegistrationID), RegistrationID: in.RegistrationID, Details: details}); err != nil {
		return err
	}
	b, err := json.Marshal(conflictAnswer{GatewayRecordResult: *res, stamp: stamp{At: s.now().UTC()}})
	if err != nil {
		return err
	}
	_, err = tx.Put(ctx, BucketConflicts, key, b, store.Condition{IfNoneMatch: true})
	return err
}

// unrevoked are the serials of id's certificates not revoked yet.
func (s *Service) unrevoked(ctx context.Context, tx store.Tx, id string) ([]string, error) {
	var out []string
	cont := ""
	for {
		page, next, err := s.certs.In(tx).ListBy(ctx, revocation.IndexCertificatesByRegistration, id, cont, 100)
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			if !c.Revoked() {
				out = append(out, c.Serial)
			}
		}
		if next == "" {
			return out, nil
		}
		cont = next
	}
}

// conflictAnswer is a stored answer to a conflicting push.
type conflictAnswer struct {
	dps.GatewayRecordResult
	stamp
}
