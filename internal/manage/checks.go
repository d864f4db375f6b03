package manage

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// checkWrite refuses, when an enrollment is written, what could never
// provision a device: a static allocation whose hub is not linked, an
// iotHubHostName pin that is not linked, a custom webhook URL that
// Config.CheckWebhookURL refuses, and a TPM enrollment that
// Config.CheckTPMEnrollment refuses.
func (s *Service) checkWrite(ctx context.Context, doc any) error {
	var spec *enrollment.Spec
	switch d := doc.(type) {
	case *enrollment.IndividualEnrollment:
		if s.cfg.CheckTPMEnrollment != nil && d.Attestation != nil && d.Attestation.TPM != nil {
			if err := s.cfg.CheckTPMEnrollment(d); err != nil {
				return err
			}
		}
		spec = &d.Spec
	case *enrollment.EnrollmentGroup:
		spec = &d.Spec
	default:
		return nil
	}
	policy, host, hubs, custom := spec.AllocationPolicy, spec.IoTHubHostName, spec.IoTHubs, spec.CustomAllocationDefinition
	check := func(field, name string) error {
		_, err := s.st.Hubs.Get(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return &enrollment.ValidationError{Field: field, Reason: fmt.Sprintf("hub %q is not linked (add it first with zdps hub add %s)", name, name)}
		case err != nil:
			return err
		}
		return nil
	}
	if custom != nil && custom.WebhookURL != "" && s.cfg.CheckWebhookURL != nil {
		if err := s.cfg.CheckWebhookURL(custom.WebhookURL); err != nil {
			return &enrollment.ValidationError{Field: "customAllocationDefinition.webhookUrl", Reason: err.Error()}
		}
	}
	if policy == enrollment.PolicyStatic {
		if len(hubs) == 1 {
			return check("iotHubs[0]", hubs[0])
		}
		return check("iotHubHostName", host)
	}
	if host != "" {
		return check("iotHubHostName", host)
	}
	return nil
}

// checkCAReferences refuses an enrollment whose caReferences name a CA
// certificate that is not registered, as DPS does, with a 400 naming the
// reference. An unverified CA may be referenced (verify it later); devices
// are refused until it is verified. The check reads outside the write's
// transaction: a CA deleted meanwhile leaves a dangling reference, which
// registration refuses like an unknown one.
func (s *Service) checkCAReferences(ctx context.Context, att *enrollment.AttestationMechanism) error {
	if att == nil || att.Type != enrollment.AttestationX509 || att.X509 == nil || att.X509.CAReferences == nil {
		return nil
	}
	refs := att.X509.CAReferences
	for _, f := range []struct{ field, name string }{{"primary", refs.Primary}, {"secondary", refs.Secondary}} {
		if f.name == "" {
			continue
		}
		field := "attestation.x509.caReferences." + f.field
		if err := enrollment.ValidateCACertificateName(f.name); err != nil {
			return &enrollment.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not a valid certificate name", f.name)}
		}
		_, err := s.st.CACertificates.Get(ctx, f.name)
		switch {
		case isNotFound(err):
			return &enrollment.ValidationError{Field: field, Reason: fmt.Sprintf("CA certificate %q is not registered (add it with PUT /certificates/%s and verify it)", f.name, f.name)}
		case err != nil:
			return err
		}
	}
	return nil
}
