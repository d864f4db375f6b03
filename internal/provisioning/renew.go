package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zdps/zdps/internal/provisioning/placement"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ErrRenewalNeedsCSR is wrapped (with ErrInvalid) by a renewal request
// that carries no CSR: a device that authenticates with its operational
// certificate comes for a new one.
var ErrRenewalNeedsCSR = errors.New("provisioning: a renewal (registration with an operational certificate zdps issued) requires a csr")

// errRenewalStale: the registration record no longer lists the presented
// certificate (deleted, re-created or changed meanwhile).
var errRenewalStale = errors.New("the registration record no longer lists the presented certificate")

// renewing adapts the target of a renewal: a pure renewal keeps the
// device ID and the hub of the current record (no reallocation, substatus
// unchanged) and needs a CSR. cur is the record read before allocation.
func renewing(req *port.Request, serial string, t *target, cur *enrollment.Registration) error {
	if len(req.CSR) == 0 {
		return port.Refuse("renewal without a CSR", fmt.Errorf("%w: %w", port.ErrInvalid, ErrRenewalNeedsCSR))
	}
	if err := checkRenewal(serial, cur); err != nil {
		return err
	}
	t.deviceID = cur.DeviceID
	t.hostName = ""
	t.reprov = enrollment.ReprovisionPolicy{UpdateHubAssignment: false, MigrateDeviceData: true}
	return nil
}

// checkRenewal holds inside the persisting transaction too, so that a
// registration deleted or re-created between attestation and commit is
// never resurrected by a renewal.
// serial is the renewing certificate's, "" when this is no renewal.
func checkRenewal(serial string, cur *enrollment.Registration) error {
	if serial == "" {
		return nil
	}
	if !placement.Assigned(cur) || cur.DeviceID == "" || !slices.ContainsFunc(cur.CertificateSerials, func(s string) bool {
		return enrollment.Key(s) == enrollment.Key(serial)
	}) {
		return port.Refuse("registration record no longer lists the certificate", fmt.Errorf("%w: %w", port.ErrUnauthorized, errRenewalStale))
	}
	return nil
}

// MaxRenewableCertificates is how many certificates of one device may
// renew: its record lists the newest unexpired ones, up to this many. A
// device renews with the certificate it was issued last, or one before it
// when it lost an answer; a device registering in a loop must not grow
// its record by a serial per request. Certificates no longer listed are
// not revoked by that: they stay valid until they expire, the certificate
// collection keeps them (revocation finds them there, not in the record),
// and their holder gets a new one by registering with its enrollment's
// attestation.
const MaxRenewableCertificates = 16

// renewableSerials is the record's list of renewable certificates once
// issued is added to what cur listed: issued last, then the newest of
// cur's that have not expired at now, at most MaxRenewableCertificates in
// all, with their NotAfter. A serial listed by a record written before
// the record kept NotAfter is looked up in tx (once: the result keeps its
// NotAfter); one whose certificate is gone (pruned after it expired) is
// dropped.
func (s *Service) renewableSerials(ctx context.Context, tx store.Tx, cur *enrollment.Registration, issued *port.Issued, now time.Time) ([]string, map[string]time.Time, error) {
	newest := enrollment.Key(issued.Serial)
	exp := map[string]time.Time{newest: issued.NotAfter.UTC()}
	var kept []string
	if cur != nil {
		certs := s.certs.In(tx)
		for i := len(cur.CertificateSerials) - 1; i >= 0 && len(kept) < MaxRenewableCertificates-1; i-- {
			sn := enrollment.Key(cur.CertificateSerials[i])
			if _, dup := exp[sn]; dup {
				continue
			}
			notAfter, ok := cur.CertificateExpiry[sn]
			if !ok {
				c, err := certs.Get(ctx, sn)
				switch {
				case errors.Is(err, store.ErrNotFound):
					continue
				case err != nil:
					return nil, nil, fmt.Errorf("provisioning: read certificate %s: %w", sn, err)
				}
				notAfter = c.NotAfter.UTC()
			}
			if !now.Before(notAfter) {
				continue // expired: it can renew no more
			}
			kept = append(kept, sn)
			exp[sn] = notAfter
		}
	}
	slices.Reverse(kept)
	return append(kept, newest), exp, nil
}
