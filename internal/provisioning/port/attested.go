package port

import (
	"bytes"
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
// of attesting again. Only Authenticate makes one (NewAttested); a
// transport passes it on unchanged in Request.Attested.
type Attested struct {
	id   Identity
	auth string // the Authorization attested
	leaf []byte // DER of the TLS client certificate attested, nil for none
	at   time.Time
	used atomic.Bool
}

// Reuse returns the attested identity for req, once, if req presents the
// credentials that were attested, within attestedReuse; nil otherwise.
func (a *Attested) Reuse(req *Request, now time.Time) *Identity {
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

// NewAttested is the attestation id of req's credentials, made at.
func NewAttested(id *Identity, req *Request, at time.Time) *Attested {
	return &Attested{id: *id, auth: req.Authorization, leaf: leafOf(req), at: at}
}
