package renewal

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// MaxChainLength bounds the certificates a device may present; the renewal
// path reads only the leaf, but a longer chain is refused before any work.
const MaxChainLength = 8

// ErrNotIssued: the certificate is not one zdps recorded as issued to
// this registration (no record for its serial, another leaf under that
// serial, or a record of another registration ID).
var ErrNotIssued = errors.New("renewal: certificate not recorded as issued to this registration")

// ErrRevoked: the certificate has been revoked.
var ErrRevoked = errors.New("renewal: certificate revoked")

// ErrExpired: the certificate is outside its validity period.
var ErrExpired = errors.New("renewal: certificate outside its validity period")

// ErrChain: the certificate does not verify to zdps's CA for client
// authentication, or its KeyUsage lacks digitalSignature.
var ErrChain = errors.New("renewal: certificate does not verify to zdps's CA for client authentication")

// ErrNoRegistration: the registration record is gone, not assigned, or no
// longer lists the certificate.
var ErrNoRegistration = errors.New("renewal: no registration record lists the certificate")

// ErrNoEnrollment: the enrollment of the registration record was deleted.
var ErrNoEnrollment = errors.New("renewal: the registration's enrollment no longer exists")

// CA is the part of *ca.CA the attestor uses: zdps's root pool and its
// current issuing intermediate.
type CA interface {
	Roots() *x509.CertPool
	Intermediate() *x509.Certificate
}

// Revocation answers whether a stored serial is revoked
// (*revocation.Revocations). Optional: the certificate record's
// RevokedAt is checked in any case.
type Revocation interface {
	IsRevoked(ctx context.Context, serial string) (bool, error)
}

// Config configures an Attestor. Store and CA are required.
type Config struct {
	Store *store.Store
	// Certificates is the collection the pipeline stores issued
	// certificates in; revocation.Certificates(Store.Backend, Now) when
	// nil.
	Certificates *store.Collection[*enrollment.Certificate]
	CA           CA
	// Walk attests chains zdps did not issue (the X.509 enrollment walk,
	// *x509att.Attestor); nil refuses them.
	Walk port.Attestor
	// Revocation is consulted besides the record's RevokedAt; optional.
	Revocation Revocation
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Attestor is the X.509 port.Attestor with the renewal path. It is
// safe for concurrent use.
type Attestor struct {
	cfg   Config
	certs *store.Collection[*enrollment.Certificate]
	now   func() time.Time
}

var _ port.Attestor = (*Attestor)(nil)

// New validates cfg and builds the attestor.
func New(cfg Config) (*Attestor, error) {
	var errs []error
	if cfg.Store == nil || cfg.Store.Backend == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if cfg.CA == nil || cfg.CA.Intermediate() == nil || cfg.CA.Roots() == nil {
		errs = append(errs, errors.New("CA with a root and an intermediate is required"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("renewal: invalid config: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	certs := cfg.Certificates
	if certs == nil {
		certs = revocation.Certificates(cfg.Store.Backend, cfg.Now)
	}
	return &Attestor{cfg: cfg, certs: certs, now: cfg.Now}, nil
}

// IssuedByZDPS reports whether leaf was signed by inter: the issuer name
// matches and the signature verifies. A certificate that merely copies
// zdps's issuer name is not zdps's.
func IssuedByZDPS(leaf, inter *x509.Certificate) bool {
	return leaf != nil && inter != nil && bytes.Equal(leaf.RawIssuer, inter.RawSubject) && leaf.CheckSignatureFrom(inter) == nil
}

func refuse(reason string, err error) error {
	return port.Refuse(reason, fmt.Errorf("%w: %w", port.ErrUnauthorized, err))
}

// Attest routes the request: a leaf zdps issued is a renewal, anything
// else goes to Config.Walk.
func (a *Attestor) Attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	chain := req.ClientCertificates
	if len(chain) > MaxChainLength {
		return nil, refuse("certificate chain too long", fmt.Errorf("%d certificates", len(chain)))
	}
	var inter *x509.Certificate
	if len(chain) > 0 {
		for _, i := range a.intermediates() {
			if IssuedByZDPS(chain[0], i) {
				inter = i
				break
			}
		}
	}
	if inter == nil {
		if a.cfg.Walk == nil {
			return nil, refuse("X.509 enrollment attestation not enabled", errors.New("the certificate was not issued by zdps"))
		}
		return a.cfg.Walk.Attest(ctx, req)
	}
	return a.renew(ctx, req.RegistrationID, chain[0], inter)
}

// intermediates are the CA's issuing intermediate and, during a rotation's
// overlap, the ones rotated out (a CA with Intermediates): a device renews
// a certificate any of them issued.
func (a *Attestor) intermediates() []*x509.Certificate {
	if m, ok := a.cfg.CA.(interface{ Intermediates() []*x509.Certificate }); ok {
		return m.Intermediates()
	}
	return []*x509.Certificate{a.cfg.CA.Intermediate()}
}

// renew checks the operational certificate leaf against zdps's CA and the
// records; see the package documentation.
func (a *Attestor) renew(ctx context.Context, registrationID string, leaf, inter *x509.Certificate) (*port.Identity, error) {
	now := a.now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, refuse("operational certificate expired or not yet valid", ErrExpired)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, refuse("operational certificate key usage does not allow client authentication", ErrChain)
	}
	inters := x509.NewCertPool()
	inters.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         a.cfg.CA.Roots(),
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, refuse("operational certificate chain expired", fmt.Errorf("%w: %v", ErrExpired, err))
		}
		return nil, refuse("operational certificate does not verify to zdps's CA", fmt.Errorf("%w: %v", ErrChain, err))
	}

	serial := fmt.Sprintf("%032x", leaf.SerialNumber)
	rec, err := a.certs.Get(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, refuse("operational certificate not recorded as issued", ErrNotIssued)
	case err != nil:
		return nil, fmt.Errorf("renewal: read certificate: %w", err)
	case len(rec.Chain) == 0 || !bytes.Equal(rec.Chain[0], leaf.Raw):
		return nil, refuse("operational certificate not recorded as issued", ErrNotIssued)
	case enrollment.Key(rec.RegistrationID) != enrollment.Key(registrationID):
		return nil, refuse("operational certificate issued to another registration", ErrNotIssued)
	case rec.RevokedAt != nil:
		return nil, refuse("certificate revoked", ErrRevoked)
	}
	if a.cfg.Revocation != nil {
		revoked, err := a.cfg.Revocation.IsRevoked(ctx, serial)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, refuse("operational certificate not recorded as issued", ErrNotIssued)
		case err != nil:
			return nil, fmt.Errorf("renewal: revocation check: %w", err)
		case revoked:
			return nil, refuse("certificate revoked", ErrRevoked)
		}
	}

	reg, err := a.cfg.Store.Registrations.Get(ctx, registrationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, refuse("registration record deleted", ErrNoRegistration)
	case err != nil:
		return nil, fmt.Errorf("renewal: read registration: %w", err)
	case reg.Status != enrollment.RegistrationAssigned:
		return nil, refuse("registration not assigned", ErrNoRegistration)
	case !slices.ContainsFunc(reg.CertificateSerials, func(s string) bool { return enrollment.Key(s) == serial }):
		return nil, refuse("registration record does not list the certificate", ErrNoRegistration)
	}

	id := &port.Identity{
		Type:           enrollment.AttestationX509,
		RegistrationID: registrationID,
		Evidence:       &evidence{serial: serial, leaf: leaf, signing: inter},
	}
	if reg.EnrollmentGroupID != "" {
		g, err := a.cfg.Store.Groups.Get(ctx, reg.EnrollmentGroupID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, refuse("enrollment group of the registration deleted", ErrNoEnrollment)
		case err != nil:
			return nil, fmt.Errorf("renewal: read enrollment group: %w", err)
		}
		id.Group = g
		return id, nil
	}
	e, err := a.cfg.Store.Enrollments.Get(ctx, registrationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, refuse("individual enrollment of the registration deleted", ErrNoEnrollment)
	case err != nil:
		return nil, fmt.Errorf("renewal: read enrollment: %w", err)
	}
	id.Enrollment = e
	return id, nil
}

// evidence is what a renewal proves beyond the identity: the operational
// certificate it authenticated with.
type evidence struct {
	port.NoEvidence
	serial        string
	leaf, signing *x509.Certificate
}

func (e *evidence) RenewalOf() string { return e.serial }

// Record keeps the new certificate's summary and the DICE state the record
// had: a renewal presents no DICE chain.
func (e *evidence) Record(rec, cur *enrollment.Registration) error {
	rec.X509 = port.X509Summary(e.leaf, e.signing)
	if cur != nil {
		rec.DICE = cur.DICE.Clone()
	}
	return nil
}
