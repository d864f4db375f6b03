package manage

import (
	"context"
	"fmt"
	"strings"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// This file holds the use cases of zdps's own resources: registration
// records, linked hubs, shared access policies and instance settings.

// Registration reads a device's registration record.
func (s *Service) Registration(ctx context.Context, id string) (*enrollment.Registration, error) {
	return s.st.Registrations.Get(ctx, id)
}

// DeleteRegistration forgets a device's registration (its next register
// call is a first assignment) and revokes the certificates issued to it,
// in one transaction (unless revocation is off).
//
// The transaction is conditional (store.Conditional): on PostgreSQL many
// deletes at once then never abort each other on the pages of the
// certificate index. The record is the point where it meets a registration
// of the same device: each writes it by compare-and-swap on what it read,
// so a registration that committed first is seen (its certificate revoked)
// and one that comes later finds the record gone and starts afresh.
func (s *Service) DeleteRegistration(ctx context.Context, id, ifMatch string) error {
	return s.st.Backend.Update(store.Conditional(ctx), func(tx store.Tx) error {
		if err := s.st.Registrations.In(tx).Delete(ctx, id, store.Condition{IfMatch: ifMatch}); err != nil {
			return err
		}
		if s.rev == nil {
			return nil
		}
		n, err := s.rev.RevokeRegistrationTx(ctx, tx, id, reasonFor(true))
		if err == nil && n > 0 {
			s.log.InfoContext(ctx, "certificates revoked", "registration_id", id, "count", n, "reason", reasonFor(true))
		}
		return err
	})
}

// Registrations reads one page of the records of the devices registered
// through a group, or of every record when group is "".
func (s *Service) Registrations(ctx context.Context, group, cont string, limit int) ([]*enrollment.Registration, string, error) {
	if group == "" {
		return s.st.Registrations.List(ctx, cont, limit)
	}
	return s.st.Registrations.ListBy(ctx, store.IndexRegistrationsByGroup, group, cont, limit)
}

// Hub reads a linked hub with how many devices it holds.
func (s *Service) Hub(ctx context.Context, name string) (*enrollment.Hub, error) {
	h, err := s.st.Hubs.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return h, s.withDeviceCount(ctx, h)
}

// Hubs reads one page of linked hubs with their device counts.
func (s *Service) Hubs(ctx context.Context, cont string, limit int) ([]*enrollment.Hub, string, error) {
	hubs, next, err := s.st.Hubs.List(ctx, cont, limit)
	for _, h := range hubs {
		if err == nil {
			err = s.withDeviceCount(ctx, h)
		}
	}
	return hubs, next, err
}

// PutHub links or replaces a hub under cond; h gets its device count.
func (s *Service) PutHub(ctx context.Context, h *enrollment.Hub, cond store.Condition) (created bool, err error) {
	if created, err = s.st.Hubs.Put(ctx, h, cond); err != nil {
		return false, preconditionOnMissing(err, cond)
	}
	return created, s.withDeviceCount(ctx, h)
}

// DeleteHub unlinks a hub.
func (s *Service) DeleteHub(ctx context.Context, name, ifMatch string) error {
	return s.st.Hubs.Delete(ctx, name, store.Condition{IfMatch: ifMatch})
}

func (s *Service) withDeviceCount(ctx context.Context, h *enrollment.Hub) error {
	n, err := s.st.Registrations.CountBy(ctx, store.IndexRegistrationsByHub, h.Name)
	if err != nil {
		return err
	}
	h.DeviceCount = &n
	return nil
}

// Policy reads a shared access policy, keys included: the caller redacts.
func (s *Service) Policy(ctx context.Context, name string) (*enrollment.SharedAccessPolicy, error) {
	return s.st.Policies.Get(ctx, name)
}

// Policies reads one page of policies, keys included.
func (s *Service) Policies(ctx context.Context, cont string, limit int) ([]*enrollment.SharedAccessPolicy, string, error) {
	return s.st.Policies.List(ctx, cont, limit)
}

// PutPolicy creates or replaces a policy under cond. Empty keys keep the
// stored keys or are generated. The owner policy must keep ServiceConfig,
// so that the instance always has a policy able to manage policies.
func (s *Service) PutPolicy(ctx context.Context, p *enrollment.SharedAccessPolicy, cond store.Condition) (created bool, err error) {
	if strings.EqualFold(p.KeyName, enrollment.OwnerPolicyName) && !p.HasRight(enrollment.RightServiceConfig) {
		return false, &enrollment.ValidationError{Field: "rights", Reason: fmt.Sprintf("the %s policy must keep the %s right, or nobody could manage policies any more", enrollment.OwnerPolicyName, enrollment.RightServiceConfig)}
	}
	req := keyPair{p.PrimaryKey, p.SecondaryKey}
	if err := p.GenerateMissingKeys(s.rand); err != nil {
		return false, fmt.Errorf("generate keys: %w", err)
	}
	gen := keyPair{p.PrimaryKey, p.SecondaryKey}
	err = s.st.Backend.Update(ctx, func(tx store.Tx) error {
		c := s.st.Policies.In(tx)
		var was keyPair
		old, err := c.Get(ctx, p.KeyName)
		switch {
		case err == nil:
			was = keyPair{old.PrimaryKey, old.SecondaryKey}
		case !isNotFound(err):
			return err
		}
		k := merge(req, was, gen)
		p.PrimaryKey, p.SecondaryKey = k.primary, k.secondary
		created, err = c.Put(ctx, p, cond)
		return err
	})
	return created, preconditionOnMissing(err, cond)
}

// DeletePolicy deletes a policy; the owner policy cannot be deleted.
func (s *Service) DeletePolicy(ctx context.Context, name, ifMatch string) error {
	if strings.EqualFold(name, enrollment.OwnerPolicyName) {
		return &enrollment.ValidationError{Field: "keyName", Reason: fmt.Sprintf("the %s policy cannot be deleted", enrollment.OwnerPolicyName)}
	}
	return s.st.Policies.Delete(ctx, name, store.Condition{IfMatch: ifMatch})
}

// settingsKey is the ID of the single Settings document.
var settingsKey = (&enrollment.Settings{}).StoreKey()

// Settings reads the instance settings.
func (s *Service) Settings(ctx context.Context) (*enrollment.Settings, error) {
	return s.st.Settings.Get(ctx, settingsKey)
}

// PutSettings changes the instance settings under cond; the ID scope,
// fixed at first start, is kept whatever set says.
func (s *Service) PutSettings(ctx context.Context, set *enrollment.Settings, cond store.Condition) error {
	err := s.st.Backend.Update(ctx, func(tx store.Tx) error {
		c := s.st.Settings.In(tx)
		set.IDScope = ""
		old, err := c.Get(ctx, settingsKey)
		switch {
		case err == nil:
			set.IDScope = old.IDScope
		case !isNotFound(err):
			return err
		}
		_, err = c.Put(ctx, set, cond)
		return err
	})
	if err == nil {
		store.Touch(store.BucketSettings) // the registration path's cache (store.Generation)
	}
	return preconditionOnMissing(err, cond)
}
