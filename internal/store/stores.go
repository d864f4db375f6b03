package store

import (
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Buckets of the typed collections.
const (
	BucketEnrollments         Bucket = "enrollments"
	BucketGroups              Bucket = "groups"
	BucketRegistrations       Bucket = "registrations"
	BucketHubs                Bucket = "hubs"
	BucketPolicies            Bucket = "policies"
	BucketSettings            Bucket = "settings"
	IndexRegistrationsByGroup Bucket = "registrations-by-group"
	IndexRegistrationsByHub   Bucket = "registrations-by-hub"
	BucketCACertificates      Bucket = "cacertificates"
	// IndexGroupsByX509 indexes enrollment groups by their X.509 trust
	// material (enrollment.EnrollmentGroup.X509IndexKeys): signing
	// certificate thumbprints and subjects, and CA reference names.
	IndexGroupsByX509 Bucket = "groups-by-x509"
	// IndexCACertificatesByX509 indexes CA certificates by thumbprint and
	// subject (enrollment.CACertificate.IndexKeys).
	IndexCACertificatesByX509 Bucket = "cacertificates-by-x509"
)

// Store is the set of typed collections zdps keeps in one Backend.
type Store struct {
	Backend       Backend
	Enrollments   *Collection[*enrollment.IndividualEnrollment]
	Groups        *Collection[*enrollment.EnrollmentGroup]
	Registrations *Collection[*enrollment.Registration]
	Hubs          *Collection[*enrollment.Hub]
	Policies      *Collection[*enrollment.SharedAccessPolicy]
	Settings      *Collection[*enrollment.Settings]
	// CACertificates are the CA certificates registered for caReferences.
	CACertificates *Collection[*enrollment.CACertificate]
}

// New builds the typed collections on b; now is the clock (time.Now if nil).
// WithSealer encrypts the documents' secrets at rest (seal.go).
func New(b Backend, now func() time.Time, opts ...Option) *Store {
	if now == nil {
		now = time.Now
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Store{
		Backend:     b,
		Enrollments: NewCollection(b, BucketEnrollments, now, func() *enrollment.IndividualEnrollment { return new(enrollment.IndividualEnrollment) }),
		Groups: NewCollection(b, BucketGroups, now, func() *enrollment.EnrollmentGroup { return new(enrollment.EnrollmentGroup) },
			Index[*enrollment.EnrollmentGroup]{Bucket: IndexGroupsByX509, Of: (*enrollment.EnrollmentGroup).X509IndexKeys},
		),
		Registrations: NewCollection(b, BucketRegistrations, now, func() *enrollment.Registration { return new(enrollment.Registration) },
			Index[*enrollment.Registration]{Bucket: IndexRegistrationsByGroup, Of: func(r *enrollment.Registration) []string { return []string{r.EnrollmentGroupID} }},
			Index[*enrollment.Registration]{Bucket: IndexRegistrationsByHub, Of: func(r *enrollment.Registration) []string { return []string{r.AssignedHub} }},
		),
		Hubs:     NewCollection(b, BucketHubs, now, func() *enrollment.Hub { return new(enrollment.Hub) }),
		Policies: NewCollection(b, BucketPolicies, now, func() *enrollment.SharedAccessPolicy { return new(enrollment.SharedAccessPolicy) }),
		Settings: NewCollection(b, BucketSettings, now, func() *enrollment.Settings { return new(enrollment.Settings) }),
		CACertificates: NewCollection(b, BucketCACertificates, now, func() *enrollment.CACertificate { return new(enrollment.CACertificate) },
			Index[*enrollment.CACertificate]{Bucket: IndexCACertificatesByX509, Of: (*enrollment.CACertificate).IndexKeys},
		),
	}
	// Every collection gets the sealer, so a secret field added to any
	// document type is sealed without anyone remembering to wire it.
	s.Enrollments.sealer, s.Groups.sealer, s.Registrations.sealer = o.sealer, o.sealer, o.sealer
	s.Hubs.sealer, s.Policies.sealer, s.Settings.sealer, s.CACertificates.sealer = o.sealer, o.sealer, o.sealer, o.sealer
	return s
}
