package provisioning

import (
	"errors"
	"fmt"
	"slices"

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
func renewing(req *Request, id *Identity, t *target, cur *enrollment.Registration) error {
	if len(req.CSR) == 0 {
		return Refuse("renewal without a CSR", fmt.Errorf("%w: %w", ErrInvalid, ErrRenewalNeedsCSR))
	}
	if err := checkRenewal(id, cur); err != nil {
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
func checkRenewal(id *Identity, cur *enrollment.Registration) error {
	if id.Renewal == nil {
		return nil
	}
	if !assigned(cur) || cur.DeviceID == "" || !slices.ContainsFunc(cur.CertificateSerials, func(s string) bool {
		return enrollment.Key(s) == enrollment.Key(id.Renewal.Serial)
	}) {
		return Refuse("registration record no longer lists the certificate", fmt.Errorf("%w: %w", ErrUnauthorized, errRenewalStale))
	}
	return nil
}

// x509Summary is what the record keeps of an X.509 attestation.
func x509Summary(id *Identity) *enrollment.RegistrationX509 {
	if id.Certificate == nil {
		return nil
	}
	out := &enrollment.RegistrationX509{CertificateInfo: enrollment.CertificateInfo(id.Certificate)}
	if id.SigningCertificate != nil {
		out.SigningCertificateInfo = enrollment.CertificateInfo(id.SigningCertificate)
	}
	return out
}
