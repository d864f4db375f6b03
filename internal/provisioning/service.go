package provisioning

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/provisioning/decision"
	"github.com/zdps/zdps/internal/provisioning/detach"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/operations"
	"github.com/zdps/zdps/internal/provisioning/placement"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// DefaultOperationTTL is how long a poll can find an operation when
// Config.OperationTTL is zero. Devices poll within seconds; a day leaves
// room for a device that lost power mid-registration.
const DefaultOperationTTL = 24 * time.Hour

// Config configures the pipeline. Store, Attestors, Allocator and Logger
// are required.
type Config struct {
	// Store holds enrollments, groups, hubs, settings and registration
	// records; certificates and operations go into the same backend
	// (Certificates, Operations).
	Store *store.Store
	// Attestors by mechanism: enrollment.AttestationSymmetricKey,
	// AttestationX509, AttestationTPM. A request whose mechanism has no
	// attestor is unauthorized.
	Attestors map[string]port.Attestor
	// Allocator chooses hubs; Input.Policy names the effective policy.
	Allocator allocation.Policy
	// Issuer signs CSRs. When nil, a request carrying a CSR is refused with
	// ErrInvalid.
	Issuer port.Issuer
	// Logger receives one line per request with the fixed keys
	// registration_id, enrollment, hub, attestation, outcome.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand is the source of operation IDs; crypto/rand when nil. It is
	// used under a lock.
	Rand io.Reader
	// ReadCacheTTL bounds how long the linked hubs and the instance
	// settings read by registrations are kept (placement); zero means
	// placement.DefaultReadCacheTTL, negative reads them on every
	// registration.
	ReadCacheTTL time.Duration
	// CertificateValidity of issued certificates; zero leaves it to the
	// issuer's default.
	CertificateValidity time.Duration
	// OperationTTL; DefaultOperationTTL when zero.
	OperationTTL time.Duration
	// AssignWait bounds how long Register waits for allocation,
	// issuance and the final write (a custom allocation webhook may be
	// slow). When they take longer, Register stores an assigning operation
	// and returns it, and the registration completes in the background
	// under the same operation ID (async.go). Zero waits for completion
	// however long it takes.
	AssignWait time.Duration
	// AssignTimeout bounds a registration that continues in the
	// background: its context ends then, and a poll after it answers
	// failed. It should exceed the allocator's worst case (webhook timeout
	// × attempts plus backoff) with room for issuing and the store write;
	// DefaultAssignTimeout when zero. Used only when AssignWait is set.
	AssignTimeout time.Duration
	// Limits are the request rates admitted per device, per group and
	// instance-wide (internal/provisioning/limits); the zero value is off.
	// limits.DefaultLimits are Azure's.
	Limits limits.Limits
	// Audit, when set, records every decision (audit.go, decision).
	Audit decision.Auditor
	// Observer, when set, counts every decision (metrics).
	Observer decision.Observer
	// SourceBlocked, when set, refuses (429) register requests from a
	// source an alert response blocked, before any attestation work.
	SourceBlocked func(ctx context.Context, remoteAddr string) (time.Duration, bool)
}

// DefaultAssignTimeout is Config.AssignTimeout when zero.
const DefaultAssignTimeout = time.Minute

// Service runs the pipeline. It is safe for concurrent use and keeps no
// state of its own beyond the registrations it is completing in the
// background (see Wait): every replica on the same store answers alike.
type Service struct {
	cfg   Config
	st    *store.Store
	certs *store.Collection[*enrollment.Certificate]
	ops   *store.Collection[*enrollment.Operation]
	// book keeps the operations ops holds.
	book  *operations.Book
	log   *slog.Logger
	now   func() time.Time
	randM sync.Mutex
	rand  io.Reader
	bg    detach.Group
	lim   *limits.Set
	// place chooses hubs (the allocate step).
	place *placement.Placer
	// testHookDetached runs after Register stopped waiting for a run and
	// before it stores the assigning state (export_test.go).
	testHookDetached func()
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	var errs []error
	if cfg.Store == nil || cfg.Store.Backend == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if len(cfg.Attestors) == 0 {
		errs = append(errs, errors.New("at least one Attestor is required"))
	}
	for k, a := range cfg.Attestors {
		switch k {
		case enrollment.AttestationSymmetricKey, enrollment.AttestationX509, enrollment.AttestationTPM:
		default:
			errs = append(errs, fmt.Errorf("Attestors: unknown mechanism %q", k))
		}
		if a == nil {
			errs = append(errs, fmt.Errorf("Attestors: %q is nil", k))
		}
	}
	if cfg.Allocator == nil {
		errs = append(errs, errors.New("Allocator is required"))
	}
	if cfg.Logger == nil {
		errs = append(errs, errors.New("Logger is required"))
	}
	if cfg.CertificateValidity < 0 || cfg.OperationTTL < 0 || cfg.AssignWait < 0 || cfg.AssignTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	errs = append(errs, cfg.Limits.Errors()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("provisioning: invalid config: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	cfg.OperationTTL = cmp.Or(cfg.OperationTTL, DefaultOperationTTL)
	cfg.AssignTimeout = cmp.Or(cfg.AssignTimeout, DefaultAssignTimeout)
	if cfg.AssignWait > 0 && cfg.AssignTimeout >= cfg.OperationTTL {
		return nil, fmt.Errorf("provisioning: invalid config: AssignTimeout %s must be shorter than OperationTTL %s", cfg.AssignTimeout, cfg.OperationTTL)
	}
	book := operations.New(cfg.Store.Backend, cfg.Now, cfg.OperationTTL)
	return &Service{
		cfg:   cfg,
		st:    cfg.Store,
		certs: revocation.Certificates(cfg.Store.Backend, cfg.Now),
		ops:   book.Operations(),
		book:  book,
		log:   cfg.Logger,
		now:   cfg.Now,
		rand:  cfg.Rand,
		lim:   limits.New(cfg.Limits),
		place: placement.New(cfg.Store, cfg.Allocator, cfg.ReadCacheTTL),
	}, nil
}

// Certificates is the collection the service stores issued certificates in.
func (s *Service) Certificates() *store.Collection[*enrollment.Certificate] { return s.certs }

// Mechanism says which attestor handles a request: a tpm body object means
// TPM (both rounds), else an Authorization header means a symmetric key,
// else a TLS client certificate means X.509; "" when the request carries
// no credential at all.
func Mechanism(req *port.Request) string {
	switch {
	case req.TPM != nil && req.TPM.EndorsementKey != "":
		return enrollment.AttestationTPM
	case req.Authorization != "":
		return enrollment.AttestationSymmetricKey
	case len(req.ClientCertificates) > 0:
		return enrollment.AttestationX509
	}
	return ""
}

// attest runs the attestor of the request's mechanism and checks that it
// attested the registration ID of the path.
func (s *Service) attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	if req == nil {
		return nil, port.Refuse("no request", fmt.Errorf("%w: no request", port.ErrInvalid))
	}
	if err := enrollment.ValidateRegistrationID(req.RegistrationID); err != nil {
		return nil, port.Refuse("invalid registrationId", fmt.Errorf("%w: %w", port.ErrInvalid, err))
	}
	mech, ctx := s.mechanism(ctx, req)
	a := s.cfg.Attestors[mech]
	if a == nil {
		if mech == "" {
			return nil, port.Refuse("no credential presented", fmt.Errorf("%w: no credential presented", port.ErrUnauthorized))
		}
		return nil, port.Refuse("attestation mechanism not enabled", fmt.Errorf("%w: %s attestation is not enabled", port.ErrUnauthorized, mech))
	}
	id, err := a.Attest(ctx, req)
	if err != nil {
		return nil, err
	}
	if id == nil || (id.Enrollment == nil && id.Group == nil) {
		return nil, port.Refuse("no enrollment", fmt.Errorf("%w: no enrollment", port.ErrUnauthorized))
	}
	if enrollment.Key(id.RegistrationID) != enrollment.Key(req.RegistrationID) {
		return nil, port.Refuse("attested registrationId differs from the request's", fmt.Errorf("%w: attested registration ID differs from the request's", port.ErrUnauthorized))
	}
	if id.Type == "" {
		id.Type = mech
	}
	return id, nil
}

// target is the resolved enrollment with its effective settings.
type target struct {
	disabled bool
	// Exactly one of individual and group is set; spec is its shared
	// fields.
	individual *enrollment.IndividualEnrollment
	group      *enrollment.EnrollmentGroup
	spec       *enrollment.Spec
	// What the pipeline applies, from spec; renewal overrides some
	// (renew.go).
	name     string // for logs: registration ID or group ID
	deviceID string
	hostName string
	policy   string
	iotHubs  []string
	reprov   enrollment.ReprovisionPolicy
}

// resolve picks the enrollment that applies: an individual enrollment for
// the registration ID first (even when the device proved a group
// credential), then the group. A disabled match yields disabled.
func (s *Service) resolve(ctx context.Context, id *port.Identity) (*target, error) {
	ind := id.Enrollment
	if ind == nil {
		e, err := s.st.Enrollments.Get(ctx, id.RegistrationID)
		switch {
		case err == nil:
			if e.ProvisioningStatus != enrollment.StatusDisabled {
				return nil, port.Refuse("individual enrollment exists and its credential was not presented", fmt.Errorf("%w: an individual enrollment exists for the registration ID and its credential was not presented", port.ErrUnauthorized))
			}
			ind = e
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("provisioning: read enrollment: %w", err)
		}
	}
	if ind != nil {
		deviceID := ind.DeviceID
		if deviceID == "" {
			deviceID = id.RegistrationID
		}
		t := newTarget(&ind.Spec, ind.RegistrationID, deviceID)
		t.individual = ind
		return t, nil
	}
	t := newTarget(&id.Group.Spec, id.Group.EnrollmentGroupID, id.RegistrationID)
	t.group = id.Group
	return t, nil
}

// newTarget is the target of an enrollment or a group with these shared
// fields.
func newTarget(spec *enrollment.Spec, name, deviceID string) *target {
	return &target{
		disabled: !spec.Enabled(),
		spec:     spec,
		name:     name,
		deviceID: deviceID,
		hostName: spec.IoTHubHostName,
		policy:   spec.AllocationPolicy,
		iotHubs:  spec.IoTHubs,
		reprov:   spec.Reprovision(),
	}
}

// groupID is the enrollment group of a target, "" for an individual one.
func (t *target) groupID() string {
	if t.group != nil {
		return t.group.EnrollmentGroupID
	}
	return ""
}

// newOperationID returns 128 random bits in lower-case hex.
func (s *Service) newOperationID() (string, error) {
	var b [16]byte
	s.randM.Lock()
	_, err := io.ReadFull(s.rand, b[:])
	s.randM.Unlock()
	if err != nil {
		return "", fmt.Errorf("provisioning: operation ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
