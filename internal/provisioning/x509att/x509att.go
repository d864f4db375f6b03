// Package x509att plugs X.509 attestation (attestation/x509) into the
// provisioning pipeline: an Attestor over the verifier, and the verifier's
// Lookup over the store (enrollments, groups through their X.509 index,
// registered CA certificates).
//
// Security contract: the Attestor verifies only Request.ClientCertificates,
// which the transport must fill from a completed TLS handshake (the
// handshake proved possession of the leaf's key). Every refusal of the
// verifier (CN other than the registration ID, unknown or unverified CA,
// expired or not yet valid certificate, key usage, a chain that does not
// verify, no matching enrollment) becomes port.ErrUnauthorized,
// keeping the verifier's sentinel in the chain; a lookup failure stays a
// server fault. Nothing here logs.
package x509att

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	x509v "github.com/zdps/zdps/attestation/x509"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Verifier is the part of *x509v.Verifier the attestor uses.
type Verifier interface {
	Verify(ctx context.Context, registrationID string, chain []*x509.Certificate) (*x509v.Result, error)
}

// Attestor is the X.509 port.Attestor.
type Attestor struct{ v Verifier }

var _ port.Attestor = (*Attestor)(nil)

// New wraps v.
func New(v Verifier) (*Attestor, error) {
	if v == nil {
		return nil, errors.New("x509att: Verifier is required")
	}
	return &Attestor{v: v}, nil
}

// refusals are the verifier's sentinels for device input, with the fixed
// reason the pipeline logs for each.
var refusals = []port.Sentinel{
	{Err: x509v.ErrCNMismatch, Reason: "CN does not match registrationId"},
	{Err: x509v.ErrCANotVerified, Reason: "CA not verified"},
	{Err: x509v.ErrExpired, Reason: "certificate expired or not yet valid"},
	{Err: x509v.ErrKeyUsage, Reason: "certificate key usage does not allow client authentication"},
	{Err: x509v.ErrChain, Reason: "chain does not verify to the enrollment's certificate"},
	{Err: x509v.ErrMalformed, Reason: "malformed certificate chain"},
	{Err: x509v.ErrUnauthorized, Reason: "no enrollment admits the certificate"},
}

// Attest verifies the request's TLS client chain for its registration ID.
func (a *Attestor) Attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	res, err := a.v.Verify(ctx, req.RegistrationID, req.ClientCertificates)
	if err != nil {
		if refusal, ok := port.RefuseAs(err, port.ErrUnauthorized, refusals); ok {
			return nil, refusal
		}
		return nil, err
	}
	if res == nil || (res.Enrollment == nil && res.Group == nil) {
		return nil, port.Refuse("no enrollment admits the certificate", fmt.Errorf("%w: no enrollment", port.ErrUnauthorized))
	}
	ev := &evidence{leaf: res.Leaf, signing: res.Anchor}
	applyDICE(res, ev) // dice.go
	return &port.Identity{
		Type:           enrollment.AttestationX509,
		RegistrationID: req.RegistrationID,
		Enrollment:     res.Enrollment,
		Group:          res.Group,
		Evidence:       ev,
	}, nil
}

// Lookup is x509v.Lookup over the store.
type Lookup struct{ st *store.Store }

var _ x509v.Lookup = Lookup{}

// NewLookup reads enrollments, groups and CA certificates from st.
func NewLookup(st *store.Store) Lookup { return Lookup{st: st} }

// IndividualEnrollment returns the enrollment for the registration ID, or
// nil, nil.
func (l Lookup) IndividualEnrollment(ctx context.Context, registrationID string) (*enrollment.IndividualEnrollment, error) {
	return l.st.Enrollments.Find(ctx, registrationID)
}

// CACertificate returns the registered CA certificate, or nil, nil.
func (l Lookup) CACertificate(ctx context.Context, name string) (*enrollment.CACertificate, error) {
	return l.st.CACertificates.Find(ctx, name)
}

// GroupsByKey lists the groups with the X.509 index value key.
func (l Lookup) GroupsByKey(ctx context.Context, key string) ([]*enrollment.EnrollmentGroup, error) {
	return l.st.Groups.AllBy(ctx, store.IndexGroupsByX509, key)
}

// CACertificatesByKey lists the CA certificates with the index value key.
func (l Lookup) CACertificatesByKey(ctx context.Context, key string) ([]*enrollment.CACertificate, error) {
	return l.st.CACertificates.AllBy(ctx, store.IndexCACertificatesByX509, key)
}

// NewAttestor builds the verifier over the store and wraps it: what
// cmd/zdps wires for X.509.
func NewAttestor(st *store.Store, cfg x509v.Config) (*Attestor, error) {
	if cfg.Lookup == nil {
		cfg.Lookup = NewLookup(st)
	}
	v, err := x509v.New(cfg)
	if err != nil {
		return nil, err
	}
	return New(v)
}
