package manage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Config configures New. Store is required.
type Config struct {
	Store *store.Store
	// Revocations revokes the certificates a delete or disable withdraws;
	// nil keeps them (the operator's --revoke-on-disable=false).
	Revocations *revocation.Revocations
	// Logger receives revocation progress; discard when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand is the source of generated keys; crypto/rand when nil. It must
	// be safe for concurrent use (the service API passes its locked one).
	Rand io.Reader
	// CheckWebhookURL, when set, checks the webhook URL of an enrollment or
	// group with the custom allocation policy when it is written; an error
	// refuses the write.
	CheckWebhookURL func(url string) error
	// CheckTPMEnrollment, when set, checks a TPM individual enrollment
	// when it is written (the EK certificate it carries); an error refuses
	// the write.
	CheckTPMEnrollment func(e *enrollment.IndividualEnrollment) error
}

// Service runs the management use cases. It is safe for concurrent use.
type Service struct {
	cfg  Config
	st   *store.Store
	rev  *revocation.Revocations
	log  *slog.Logger
	rand io.Reader
	now  func() time.Time
}

// ErrBadRequest: a request the use case refuses for what it asks (a
// verification proof that does not prove). Validation errors of the
// documents themselves are enrollment.ValidationError.
var ErrBadRequest = errors.New("bad request")

// New builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Store.Backend == nil {
		return nil, errors.New("manage: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, st: cfg.Store, rev: cfg.Revocations, log: cfg.Logger, rand: cfg.Rand, now: cfg.Now}, nil
}

// Store is the store the service manages, for reads that are no use case
// (health checks, counts).
func (s *Service) Store() *store.Store { return s.st }

// inlinePages bounds the revocation a change runs before it returns: at
// the default page size, 2,000 devices of a group. A larger group is
// finished by revocation.Revocations.Run in the background
// (docs/architecture.md#storage-model: no request holds the store for long).
const inlinePages = 20

// finishRevocation runs the revocation jobs a change stored, bounded, so
// that an enrollment's or a small group's certificates are revoked before
// the change returns, and leaves the rest to Run. A failure is logged,
// not returned: the change is committed and the jobs are stored, so Run
// completes them (and until then the devices they cover are refused).
func (s *Service) finishRevocation(ctx context.Context, jobs []revocation.Job) {
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	done, err := s.rev.Finish(ctx, jobs, inlinePages+len(jobs))
	if err != nil {
		s.log.WarnContext(ctx, "revocation not finished with the change; it continues in the background", "error", err)
	}
	if !done {
		s.rev.Kick()
	}
}

// preconditionOnMissing turns "not found" into "precondition failed" for a
// write under If-Match: the client asked to change a version that does not
// exist (RFC 9110 §13.1.1).
func preconditionOnMissing(err error, cond store.Condition) error {
	if cond.IfMatch != "" && errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no stored version matches If-Match: %w", store.ErrPreconditionFailed, err)
	}
	return err
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
