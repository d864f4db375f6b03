package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"

	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// benchHubs are created by setup when the instance has no hub at all.
var benchHubs = []string{"bench-hub-1.example.net", "bench-hub-2.example.net"}

// setupBatch is how many enrollments one bulk call carries (the server's
// default --max-bulk-items is 1000).
const setupBatch = 500

func randomKey() []byte {
	k := make([]byte, enrollment.GeneratedKeyBytes)
	_, _ = rand.Read(k) // never fails (crypto/rand)
	return k
}

// setup creates the enrollments (or group), the test CA and, when the
// instance has none, hubs.
func (r *runner) setup(ctx context.Context) error {
	c := r.cfg.Client
	hubs, _, err := c.ListHubs(ctx, 1, "")
	if err != nil {
		return fmt.Errorf("bench: list hubs: %w", err)
	}
	if len(hubs) == 0 {
		for _, h := range benchHubs {
			if _, err := c.PutHub(ctx, &enrollment.Hub{Name: h, AllocationWeight: 1}, ""); err != nil {
				return fmt.Errorf("bench: create hub %s: %w", h, err)
			}
			r.createdHubs = append(r.createdHubs, h)
		}
	}
	switch r.cfg.Attestation {
	case SymmetricIndividual:
		for i := range r.devices {
			r.devices[i].key = randomKey()
		}
		return r.setupIndividuals(ctx, func(d *simDevice) *enrollment.AttestationMechanism {
			return &enrollment.AttestationMechanism{
				Type: enrollment.AttestationSymmetricKey,
				SymmetricKey: &enrollment.SymmetricKeyAttestation{
					PrimaryKey:   base64.StdEncoding.EncodeToString(d.key),
					SecondaryKey: base64.StdEncoding.EncodeToString(randomKey()),
				},
			}
		})
	case TPM:
		if err := r.newTPMs(ctx); err != nil {
			return err
		}
		return r.setupIndividuals(ctx, func(d *simDevice) *enrollment.AttestationMechanism {
			return &enrollment.AttestationMechanism{
				Type: enrollment.AttestationTPM,
				TPM:  &enrollment.TPMAttestation{EndorsementKey: base64.StdEncoding.EncodeToString(d.tpm.EndorsementKey())},
			}
		})
	case SymmetricGroup:
		key := base64.StdEncoding.EncodeToString(randomKey())
		if err := r.putGroup(ctx, &enrollment.AttestationMechanism{
			Type:         enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: base64.StdEncoding.EncodeToString(randomKey())},
		}); err != nil {
			return err
		}
		r.groupKey, _ = base64.StdEncoding.DecodeString(key)
		return nil
	case X509:
		ca, err := newTestCA("zdps bench CA "+r.cfg.Prefix, r.cfg.Now())
		if err != nil {
			return fmt.Errorf("bench: test CA: %w", err)
		}
		r.ca = ca
		return r.putGroup(ctx, &enrollment.AttestationMechanism{
			Type: enrollment.AttestationX509,
			X509: &enrollment.X509Attestation{SigningCertificates: &enrollment.X509Certificates{
				Primary: &enrollment.X509CertificateWithInfo{Certificate: ca.pem()},
			}},
		})
	}
	return fmt.Errorf("bench: setup of %q is not supported", r.cfg.Attestation)
}

func (r *runner) putGroup(ctx context.Context, m *enrollment.AttestationMechanism) error {
	g := &enrollment.EnrollmentGroup{EnrollmentGroupID: r.groupID(), Spec: enrollment.Spec{Attestation: m}}
	if _, err := r.cfg.Client.PutGroup(ctx, g, ""); err != nil {
		return fmt.Errorf("bench: create enrollment group %s: %w", g.EnrollmentGroupID, err)
	}
	r.createdGroup = true
	return nil
}

// setupIndividuals bulk-creates one individual enrollment per device with
// the attestation att gives it (keys chosen here, so none has to be
// fetched back).
func (r *runner) setupIndividuals(ctx context.Context, att func(*simDevice) *enrollment.AttestationMechanism) error {
	batches := (len(r.devices) + setupBatch - 1) / setupBatch
	return parallel(ctx, batches, func(b int) error {
		lo, hi := b*setupBatch, min((b+1)*setupBatch, len(r.devices))
		items := make([]*enrollment.IndividualEnrollment, 0, hi-lo)
		for i := lo; i < hi; i++ {
			d := &r.devices[i]
			items = append(items, &enrollment.IndividualEnrollment{RegistrationID: d.regID, Spec: enrollment.Spec{Attestation: att(d)}})
		}
		res, err := r.cfg.Client.BulkEnrollments(ctx, enrollment.BulkCreate, items)
		if err == nil && !res.IsSuccessful && len(res.Errors) > 0 {
			e := res.Errors[0]
			err = fmt.Errorf("%d of %d failed, first %s: %d %s", len(res.Errors), len(items), e.RegistrationID, e.ErrorCode, e.ErrorStatus)
		}
		if err != nil {
			return fmt.Errorf("bench: bulk-create enrollments: %w", err)
		}
		r.markCreated(hi - lo)
		return nil
	})
}

func (r *runner) markCreated(n int) {
	r.mu.Lock()
	r.createdEnrollments += n
	r.mu.Unlock()
}

// fetchKeys reads what devices need from enrollments that exist already
// (no setup): individual keys one by one, or the group key.
func (r *runner) fetchKeys(ctx context.Context) error {
	c := r.cfg.Client
	switch r.cfg.Attestation {
	case SymmetricGroup:
		m, err := c.GroupKeys(ctx, r.groupID())
		if err != nil {
			return fmt.Errorf("bench: keys of group %s (create it, or use --setup): %w", r.groupID(), err)
		}
		if m.SymmetricKey == nil {
			return fmt.Errorf("bench: group %s is not a symmetric-key group", r.groupID())
		}
		r.groupKey, err = base64.StdEncoding.DecodeString(m.SymmetricKey.PrimaryKey)
		return err
	case SymmetricIndividual:
		return parallelN(ctx, len(r.devices), 16, func(i int) error {
			d := &r.devices[i]
			m, err := c.EnrollmentKeys(ctx, d.regID)
			if err != nil {
				return fmt.Errorf("bench: keys of enrollment %s (create the enrollments, or use --setup): %w", d.regID, err)
			}
			if m.SymmetricKey == nil {
				return fmt.Errorf("bench: enrollment %s is not a symmetric-key enrollment", d.regID)
			}
			d.key, err = base64.StdEncoding.DecodeString(m.SymmetricKey.PrimaryKey)
			return err
		})
	}
	return fmt.Errorf("bench: %s needs --setup (the run creates its own test CA and group, or its TPMs and their enrollments)", r.cfg.Attestation)
}

// cleanup deletes the run's registration records, then what setup made.
// It goes on after a failure and returns every error, joined.
func (r *runner) cleanup(ctx context.Context) error {
	c := r.cfg.Client
	var (
		mu   sync.Mutex
		errs []error
	)
	note := func(err error) {
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			mu.Lock()
			if len(errs) < 5 {
				errs = append(errs, err)
			}
			mu.Unlock()
		}
	}
	_ = parallelN(ctx, len(r.devices), 16, func(i int) error {
		note(c.DeleteRegistration(ctx, r.devices[i].regID, ""))
		return nil
	})
	if r.createdEnrollments > 0 {
		batches := (len(r.devices) + setupBatch - 1) / setupBatch
		_ = parallel(ctx, batches, func(b int) error {
			lo, hi := b*setupBatch, min((b+1)*setupBatch, len(r.devices))
			items := make([]*enrollment.IndividualEnrollment, 0, hi-lo)
			for _, d := range r.devices[lo:hi] {
				items = append(items, &enrollment.IndividualEnrollment{RegistrationID: d.regID})
			}
			res, err := c.BulkEnrollments(ctx, enrollment.BulkDelete, items)
			if err == nil && !res.IsSuccessful && len(res.Errors) > 0 {
				err = fmt.Errorf("bench: bulk-delete enrollments: %d failed, first %s: %s", len(res.Errors), res.Errors[0].RegistrationID, res.Errors[0].ErrorStatus)
			}
			note(err)
			return nil
		})
	}
	if r.createdGroup {
		note(c.DeleteGroup(ctx, r.groupID(), ""))
	}
	for _, h := range r.createdHubs {
		note(c.DeleteHub(ctx, h, ""))
	}
	return errors.Join(errs...)
}

// parallelN is parallel with n workers instead of one per CPU (for calls
// that wait on the network).
func parallelN(ctx context.Context, n, workers int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
feed:
	for i := range n {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
