package api

import (
	"context"
	"crypto/x509"

	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// UseCases are the management use cases the handlers translate, each
// behind the small interface of what the handlers call. internal/manage
// implements them all; cmd/zdps builds it and hands it over.
type UseCases struct {
	Enrollments   Documents[*enrollment.IndividualEnrollment]
	Groups        Documents[*enrollment.EnrollmentGroup]
	Registrations RegistrationRecords
	Resources     ServiceResources
	Certificates  CACertificates
}

// Documents are the use cases of one kind of enrollment document
// (manage.Docs).
type Documents[T store.Document] interface {
	Get(ctx context.Context, id string) (T, error)
	List(ctx context.Context, cont string, limit int) ([]T, string, error)
	Put(ctx context.Context, v T, cond store.Condition) (created bool, err error)
	Delete(ctx context.Context, id, ifMatch string) error
	Bulk(ctx context.Context, mode string, vs []T) []manage.BulkResult
}

// RegistrationRecords are the use cases of registration records.
type RegistrationRecords interface {
	Registration(ctx context.Context, id string) (*enrollment.Registration, error)
	DeleteRegistration(ctx context.Context, id, ifMatch string) error
	Registrations(ctx context.Context, group, cont string, limit int) ([]*enrollment.Registration, string, error)
	// EnrollmentState is the registrationState of an individual
	// enrollment's GET answer.
	EnrollmentState(ctx context.Context, registrationID string) (*enrollment.RegistrationState, error)
}

// ServiceResources are the use cases of the instance's configuration:
// hubs, shared access policies and settings.
type ServiceResources interface {
	Hub(ctx context.Context, name string) (*enrollment.Hub, error)
	Hubs(ctx context.Context, cont string, limit int) ([]*enrollment.Hub, string, error)
	PutHub(ctx context.Context, h *enrollment.Hub, cond store.Condition) (created bool, err error)
	DeleteHub(ctx context.Context, name, ifMatch string) error
	Policy(ctx context.Context, name string) (*enrollment.SharedAccessPolicy, error)
	Policies(ctx context.Context, cont string, limit int) ([]*enrollment.SharedAccessPolicy, string, error)
	PutPolicy(ctx context.Context, p *enrollment.SharedAccessPolicy, cond store.Condition) (created bool, err error)
	DeletePolicy(ctx context.Context, name, ifMatch string) error
	Settings(ctx context.Context) (*enrollment.Settings, error)
	PutSettings(ctx context.Context, set *enrollment.Settings, cond store.Condition) error
}

// CACertificates are the use cases of verified CA certificates.
type CACertificates interface {
	CACertificate(ctx context.Context, name string) (*enrollment.CACertificate, error)
	CACertificates(ctx context.Context, cont string, limit int) ([]*enrollment.CACertificate, string, error)
	PutCACertificate(ctx context.Context, c *enrollment.CACertificate, cond store.Condition) (created bool, err error)
	DeleteCACertificate(ctx context.Context, name, ifMatch string) error
	VerificationCode(ctx context.Context, name string) (*enrollment.CACertificate, error)
	VerifyCACertificate(ctx context.Context, name string, proof *x509.Certificate) (*enrollment.CACertificate, error)
}

// UseCasesOf is every use case of m, for Config.UseCases.
func UseCasesOf(m *manage.Service) UseCases {
	return UseCases{
		Enrollments:   m.IndividualEnrollments(),
		Groups:        m.EnrollmentGroups(),
		Registrations: m,
		Resources:     m,
		Certificates:  m,
	}
}

// complete reports whether every use case is set.
func (u UseCases) complete() bool {
	return u.Enrollments != nil && u.Groups != nil && u.Registrations != nil && u.Resources != nil && u.Certificates != nil
}

// UseCases are the use cases the API was built with, for another
// transport (the web console) that must run the same ones.
func (a *API) UseCases() UseCases { return a.uc }
