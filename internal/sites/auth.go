package sites

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Gateway is an authenticated gateway.
type Gateway struct {
	// RegistrationID is the gateway's own registration at this zdps.
	RegistrationID string
	// Site is its enrollment's site: the only site it acts for.
	Site string
	// PublicKey is its TLS client certificate's key (ECDSA P-256), the
	// key the feed's symmetric keys are sealed to.
	PublicKey *ecdsa.PublicKey
	// Serial is the client certificate's serial.
	Serial string
	// Group is the group the gateway is a member of, "" when an
	// individual enrollment makes it a gateway.
	Group string
}

// Actor is the gateway's name in the audit trail.
func (g *Gateway) Actor() string { return "gateway:" + g.RegistrationID }

// Authenticate finds the gateway a TLS client certificate belongs to.
// The TLS handshake proved possession of its key; here it must be a
// certificate this zdps issued to a device (stored byte for byte, as
// issued, by the registration that got it), unrevoked and valid now, of
// a record registered here (not pushed by a gateway) whose enrollment
// (the individual one, else the record's group) is enabled, has
// capabilities.iotEdge and names a site that exists. Refusals wrap
// ErrUnauthorized or ErrForbidden with the reason for the log.
func (s *Service) Authenticate(ctx context.Context, cert *x509.Certificate) (*Gateway, error) {
	if cert == nil {
		return nil, fmt.Errorf("%w: no client certificate", ErrUnauthorized)
	}
	serial := fmt.Sprintf("%032x", cert.SerialNumber)
	var gw *Gateway
	err := s.st.Backend.View(ctx, func(tx store.Tx) error {
		c, err := s.certs.In(tx).Get(ctx, serial)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: certificate %s was not issued here", ErrUnauthorized, serial)
		}
		if err != nil {
			return err
		}
		if len(c.Chain) == 0 || !bytes.Equal(c.Chain[0], cert.Raw) || cert.IsCA {
			return fmt.Errorf("%w: certificate %s differs from the one issued", ErrUnauthorized, serial)
		}
		if c.Revoked() {
			return fmt.Errorf("%w: certificate %s is revoked", ErrUnauthorized, serial)
		}
		if now := s.now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fmt.Errorf("%w: certificate %s is not valid now", ErrUnauthorized, serial)
		}
		rec, err := s.st.Registrations.In(tx).Get(ctx, c.RegistrationID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: registration %q of certificate %s is gone", ErrUnauthorized, c.RegistrationID, serial)
		}
		if err != nil {
			return err
		}
		if rec.Gateway != "" {
			return fmt.Errorf("%w: %q registered at gateway %q, not here", ErrForbidden, rec.RegistrationID, rec.Gateway)
		}
		spec, group, err := s.specOf(ctx, tx, rec)
		if err != nil {
			return err
		}
		switch {
		case spec.Capabilities == nil || !spec.Capabilities.IoTEdge:
			return fmt.Errorf("%w: %q: its enrollment lacks capabilities.iotEdge", ErrForbidden, rec.RegistrationID)
		case spec.Site == "":
			return fmt.Errorf("%w: %q: its enrollment names no site", ErrForbidden, rec.RegistrationID)
		case spec.ProvisioningStatus == enrollment.StatusDisabled:
			return fmt.Errorf("%w: %q: its enrollment is disabled", ErrForbidden, rec.RegistrationID)
		}
		if _, err := s.sites.In(tx).Get(ctx, spec.Site); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %q: site %q does not exist", ErrForbidden, rec.RegistrationID, spec.Site)
		} else if err != nil {
			return err
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return fmt.Errorf("%w: %q: a gateway's certificate key must be ECDSA P-256", ErrForbidden, rec.RegistrationID)
		}
		gw = &Gateway{RegistrationID: rec.RegistrationID, Site: spec.Site, PublicKey: pub, Serial: serial, Group: group}
		return nil
	})
	return gw, err
}

// specOf is the enrollment a record was registered through: the
// individual enrollment of its ID, else its group (whose ID it returns).
func (s *Service) specOf(ctx context.Context, tx store.Tx, rec *enrollment.Registration) (*enrollment.Spec, string, error) {
	e, err := s.st.Enrollments.In(tx).Get(ctx, rec.RegistrationID)
	if err == nil {
		return &e.Spec, "", nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, "", err
	}
	if rec.EnrollmentGroupID != "" {
		g, err := s.st.Groups.In(tx).Get(ctx, rec.EnrollmentGroupID)
		if err == nil {
			return &g.Spec, g.EnrollmentGroupID, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("%w: %q: its enrollment is gone", ErrUnauthorized, rec.RegistrationID)
}
