package provisioning

import (
	"bytes"
	"context"
	"crypto/subtle"
	"sync/atomic"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// attestedReuse bounds how long after Authenticate a register may reuse
// its attestation: no longer than a slow register holds the enrollment it
// read (AssignWait), so the snapshot is no staler than HTTPS's; persist
// re-reads the enrollment either way.
const attestedReuse = 10 * time.Second

// Attested is an attestation Authenticate made, which the first register
// presenting the same credentials on the same connection reuses instead
// of attesting again. Only Authenticate makes one; a transport passes it
// on unchanged in Request.Attested.
type Attested struct {
	id   Identity
	auth string // the Authorization attested
	leaf []byte // DER of the TLS client certificate attested, nil for none
	at   time.Time
	used atomic.Bool
}

// reuse returns the attested identity for req, once, if req presents the
// credentials that were attested, within attestedReuse; nil otherwise.
func (a *Attested) reuse(req *Request, now time.Time) *Identity {
	if a == nil || req.TPM != nil || now.Sub(a.at) >= attestedReuse || now.Before(a.at) ||
		enrollment.Key(req.RegistrationID) != enrollment.Key(a.id.RegistrationID) ||
		subtle.ConstantTimeCompare([]byte(req.Authorization), []byte(a.auth)) != 1 ||
		!bytes.Equal(leafOf(req), a.leaf) {
		return nil
	}
	if !a.used.CompareAndSwap(false, true) {
		return nil
	}
	id := a.id
	return &id
}

func leafOf(req *Request) []byte {
	if len(req.ClientCertificates) == 0 {
		return nil
	}
	return req.ClientCertificates[0].Raw
}

// Authenticate checks a device's credentials without registering it: the
// attest and resolve steps of Register, no throttle counted, nothing
// stored. A transport that authenticates once per connection (MQTT's
// CONNECT) refuses a device early with it. On success it sets
// req.Attested, so that the connection's first register (a copy of req
// with the same credentials) is not attested a second time; every other
// request still runs the whole pipeline. Errors are those of Register's
// first two steps: ErrUnauthorized, ErrInvalid, or a server fault.
func (s *Service) Authenticate(ctx context.Context, req *Request) (err error) {
	log := s.requestLog(req)
	defer s.logIfFailed(ctx, log, "authenticate", &err)
	id, err := s.attest(ctx, req)
	if err != nil {
		return err
	}
	if err := id.evidence().Check(); err != nil {
		return err
	}
	if _, err := s.resolve(ctx, id); err != nil {
		return err
	}
	req.Attested = &Attested{id: *id, auth: req.Authorization, leaf: leafOf(req), at: s.now()}
	return nil
}
