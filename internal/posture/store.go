package posture

import (
	"context"
	"time"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// page is how many documents one read transaction of the store source
// holds.
const page = 500

// StoreSource reads a store's collections page by page.
type StoreSource struct {
	S     *store.Store
	certs *store.Collection[*enrollment.Certificate]
}

// NewStoreSource reads s.
func NewStoreSource(s *store.Store) *StoreSource {
	return &StoreSource{S: s, certs: revocation.Certificates(s.Backend, time.Now)}
}

func each[T store.Document](ctx context.Context, c *store.Collection[T], fn func(T) error) error {
	cont := ""
	for {
		items, next, err := c.List(ctx, cont, page)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := fn(it); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cont = next
	}
}

func (s *StoreSource) Enrollments(ctx context.Context, fn func(*enrollment.IndividualEnrollment) error) error {
	return each(ctx, s.S.Enrollments, fn)
}

func (s *StoreSource) Groups(ctx context.Context, fn func(*enrollment.EnrollmentGroup) error) error {
	return each(ctx, s.S.Groups, fn)
}

func (s *StoreSource) Registrations(ctx context.Context, fn func(*enrollment.Registration) error) error {
	return each(ctx, s.S.Registrations, fn)
}

func (s *StoreSource) CACertificates(ctx context.Context, fn func(*enrollment.CACertificate) error) error {
	return each(ctx, s.S.CACertificates, fn)
}

func (s *StoreSource) Hubs(ctx context.Context, fn func(*enrollment.Hub) error) error {
	return each(ctx, s.S.Hubs, fn)
}

func (s *StoreSource) Certificates(ctx context.Context, fn func(*enrollment.Certificate) error) error {
	return each(ctx, s.certs, fn)
}
