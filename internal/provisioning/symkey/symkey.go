// Package symkey plugs symmetric-key attestation (attestation/symmetric)
// into the provisioning pipeline: an Attestor over a *symmetric.Verifier,
// and the verifier's Lookup over the store.
//
// Security contract: every refusal of the verifier (bad or missing
// signature, expired token, malformed Authorization, token for another
// resource, no matching enrollment) becomes port.ErrUnauthorized,
// keeping the verifier's sentinel in the chain; a lookup failure stays a
// server fault. Nothing here logs.
package symkey

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/attestation/symmetric"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Verifier is the part of *symmetric.Verifier the attestor uses.
type Verifier interface {
	Verify(ctx context.Context, idScope, registrationID, authorization string) (*symmetric.Result, error)
}

// Attestor is the symmetric-key port.Attestor.
type Attestor struct{ v Verifier }

var _ port.Attestor = (*Attestor)(nil)

// New wraps v.
func New(v Verifier) (*Attestor, error) {
	if v == nil {
		return nil, errors.New("symkey: Verifier is required")
	}
	return &Attestor{v: v}, nil
}

// refusals are the verifier's sentinels for device input, with the fixed
// reason the pipeline logs for each.
var refusals = []port.Sentinel{
	{Err: symmetric.ErrExpired, Reason: "SAS token expired"},
	{Err: symmetric.ErrMalformed, Reason: "malformed SAS token"},
	{Err: symmetric.ErrUnauthorized, Reason: "SAS signature or resource does not match an enrollment"},
}

// Attest verifies the request's SAS for its ID scope and registration ID.
func (a *Attestor) Attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	res, err := a.v.Verify(ctx, req.IDScope, req.RegistrationID, req.Authorization)
	refusal, refused := port.RefuseAs(err, port.ErrUnauthorized, refusals)
	switch {
	case refused:
		return nil, refusal
	case err != nil:
		return nil, err
	case res == nil || (res.Enrollment == nil && res.Group == nil):
		return nil, port.Refuse("no enrollment", fmt.Errorf("%w: no enrollment", port.ErrUnauthorized))
	}
	return &port.Identity{
		Type:           enrollment.AttestationSymmetricKey,
		RegistrationID: req.RegistrationID,
		Enrollment:     res.Enrollment,
		Group:          res.Group,
	}, nil
}

// Lookup is symmetric.Lookup over the store.
type Lookup struct{ st *store.Store }

var _ symmetric.Lookup = Lookup{}

// NewLookup reads enrollments and groups from st.
func NewLookup(st *store.Store) Lookup { return Lookup{st: st} }

// IndividualEnrollment returns the enrollment for the registration ID, or
// nil, nil.
func (l Lookup) IndividualEnrollment(ctx context.Context, registrationID string) (*enrollment.IndividualEnrollment, error) {
	if e, ok := port.PrefetchedEnrollment(ctx, registrationID); ok {
		return e, nil // the pipeline read it for this request already
	}
	return l.st.Enrollments.Find(ctx, registrationID)
}

// SymmetricKeyGroups returns every symmetric-key group in key order.
func (l Lookup) SymmetricKeyGroups(ctx context.Context) ([]*enrollment.EnrollmentGroup, error) {
	all, err := l.st.Groups.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []*enrollment.EnrollmentGroup
	for _, g := range all {
		if g.Attestation != nil && g.Attestation.Type == enrollment.AttestationSymmetricKey {
			out = append(out, g)
		}
	}
	return out, nil
}

// NewAttestor builds the verifier over the store and wraps it: what
// cmd/zdps wires for symmetric keys.
func NewAttestor(st *store.Store, cfg symmetric.Config) (*Attestor, error) {
	if cfg.Lookup == nil {
		cfg.Lookup = NewLookup(st)
	}
	v, err := symmetric.New(cfg)
	if err != nil {
		return nil, err
	}
	return New(v)
}
