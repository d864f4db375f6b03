package symmetric

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// Sentinel errors. Transports map ErrUnauthorized and ErrExpired to 401 and
// ErrMalformed to 400 (or 401, as DPS does for a bad Authorization header).
// Errors from the Lookup are returned wrapped and are none of these: a
// store failure is a server fault, not a refusal.
var (
	// ErrUnauthorized: wrong resource, bad signature, or no enrollment
	// matches.
	ErrUnauthorized = errors.New("symmetric: unauthorized")
	// ErrExpired: the token has expired; it also matches sas.ErrExpired.
	ErrExpired = fmt.Errorf("symmetric: %w", sas.ErrExpired)
	// ErrMalformed: the Authorization value or the registration ID is not
	// well formed.
	ErrMalformed = errors.New("symmetric: malformed authorization")
)

// DefaultSkew is the clock-skew allowance applied to token expiry when
// Config.Skew is zero.
const DefaultSkew = 5 * time.Minute

// Lookup finds the enrollments a symmetric-key device may match. Not found
// is signalled by (nil, nil), never by an error: an error means the lookup
// itself failed, and Verify returns it (wrapped) instead of refusing the
// device.
type Lookup interface {
	// IndividualEnrollment returns the individual enrollment for the
	// registration ID (case-insensitive), or nil, nil.
	IndividualEnrollment(ctx context.Context, registrationID string) (*enrollment.IndividualEnrollment, error)
	// SymmetricKeyGroups returns the enrollment groups that use
	// symmetric-key attestation, enabled or not, in a stable order (the
	// first group whose derived key matches wins). Groups of other types
	// are ignored if returned.
	SymmetricKeyGroups(ctx context.Context) ([]*enrollment.EnrollmentGroup, error)
}

// Config configures a Verifier.
type Config struct {
	Lookup Lookup
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Skew is how long after its expiry a token is still accepted, for
	// devices with slightly wrong clocks; 0 means DefaultSkew.
	Skew time.Duration
}

// Verifier checks symmetric-key registrations. It is safe for concurrent
// use.
type Verifier struct {
	lookup Lookup
	now    func() time.Time
	skew   time.Duration
}

// New validates cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.Lookup == nil {
		return nil, errors.New("symmetric: Config.Lookup is required")
	}
	if cfg.Skew < 0 {
		return nil, errors.New("symmetric: Config.Skew must not be negative")
	}
	v := &Verifier{lookup: cfg.Lookup, now: cfg.Now, skew: cfg.Skew}
	if v.now == nil {
		v.now = time.Now
	}
	if v.skew == 0 {
		v.skew = DefaultSkew
	}
	return v, nil
}

// Result names the enrollment that authenticated the device: exactly one of
// Enrollment and Group is set.
type Result struct {
	Enrollment *enrollment.IndividualEnrollment
	Group      *enrollment.EnrollmentGroup
}

// Verify authenticates a registration request: idScope is the instance's
// ID scope, registrationID the (decoded) ID from the request path, and
// authorization the Authorization header (or MQTT password) value. See the
// package documentation for the rules and what the caller must still check.
func (v *Verifier) Verify(ctx context.Context, idScope, registrationID, authorization string) (*Result, error) {
	if err := enrollment.ValidateRegistrationID(registrationID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	tok, err := sas.Parse(authorization)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	resource, err := tok.DecodedResource()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !strings.EqualFold(resource, dps.RegistrationResource(idScope, registrationID)) {
		return nil, fmt.Errorf("%w: the token is for another resource", ErrUnauthorized)
	}
	// Expiry first: a stale token costs no store lookup.
	if err := tok.CheckExpiry(v.now(), v.skew); err != nil {
		return nil, ErrExpired
	}

	ie, err := v.lookup.IndividualEnrollment(ctx, registrationID)
	if err != nil {
		return nil, fmt.Errorf("symmetric: looking up the enrollment: %w", err)
	}
	if ie != nil && ie.Attestation != nil && ie.Attestation.Type == enrollment.AttestationSymmetricKey {
		for _, k := range ie.Attestation.SymmetricKeys() {
			if tok.VerifySignature(k) == nil {
				return &Result{Enrollment: ie}, nil
			}
		}
		return nil, fmt.Errorf("%w: signature does not match the enrollment's keys", ErrUnauthorized)
	}

	groups, err := v.lookup.SymmetricKeyGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("symmetric: looking up enrollment groups: %w", err)
	}
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return nil, err // many groups: stop when the caller has gone
		}
		if g == nil {
			continue
		}
		for _, gk := range g.Attestation.SymmetricKeys() {
			if tok.VerifySignature(sas.DeriveDeviceKey(gk, registrationID)) == nil {
				return &Result{Group: g}, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: no enrollment matches", ErrUnauthorized)
}
