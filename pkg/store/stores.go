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
}

// New builds the typed collections on b; now is the clock (time.Now if nil).
func New(b Backend, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		Backend:     b,
		Enrollments: NewCollection(b, BucketEnrollments, now, func() *enrollment.IndividualEnrollment { return new(enrollment.IndividualEnrollment) }),
		Groups:      NewCollection(b, BucketGroups, now, func() *enrollment.EnrollmentGroup { return new(enrollment.EnrollmentGroup) }),
		Registrations: NewCollection(b, BucketRegistrations, now, func() *enrollment.Registration { return new(enrollment.Registration) },
			Index[*enrollment.Registration]{Bucket: IndexRegistrationsByGroup, Of: func(r *enrollment.Registration) []string { return []string{r.EnrollmentGroupID} }},
			Index[*enrollment.Registration]{Bucket: IndexRegistrationsByHub, Of: func(r *enrollment.Registration) []string { return []string{r.AssignedHub} }},
		),
		Hubs:     NewCollection(b, BucketHubs, now, func() *enrollment.Hub { return new(enrollment.Hub) }),
		Policies: NewCollection(b, BucketPolicies, now, func() *enrollment.SharedAccessPolicy { return new(enrollment.SharedAccessPolicy) }),
		Settings: NewCollection(b, BucketSettings, now, func() *enrollment.Settings { return new(enrollment.Settings) }),
	}
}
