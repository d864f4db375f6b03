package provisioning

import (
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
)

// Buckets the pipeline owns, besides the store.Store collections.
const (
	// BucketCertificates holds enrollment.Certificate by serial.
	BucketCertificates store.Bucket = "certificates"
	// IndexCertificatesByRegistration indexes certificates by registration ID.
	IndexCertificatesByRegistration store.Bucket = "certificates-by-registration"
	// IndexCertificatesRevoked indexes the revoked certificates under the
	// single value revokedIndexValue, so that the CRL pages through the
	// revoked ones without reading every certificate ever issued.
	IndexCertificatesRevoked store.Bucket = "certificates-revoked"
	// BucketOperations holds enrollment.Operation by operation ID.
	BucketOperations store.Bucket = "operations"
	// IndexOperationsAssigning indexes the operations whose status is
	// assigning by registration ID: the registrations running in the
	// background (async.go). The entry goes when the final state replaces
	// the assigning one.
	IndexOperationsAssigning store.Bucket = "operations-assigning"
	// BucketOperationsCurrent holds, by registration ID, the ID of the
	// device's last final operation, so that writing the next one finds
	// and deletes it with point reads (closeOperation).
	BucketOperationsCurrent store.Bucket = "operations-current"
)

// Certificates is the collection of issued certificates on b, for anyone
// who needs to read or revoke them (the service API, the CRL). now is the
// clock (time.Now when nil).
func Certificates(b store.Backend, now func() time.Time) *store.Collection[*enrollment.Certificate] {
	if now == nil {
		now = time.Now
	}
	return store.NewCollection(b, BucketCertificates, now, func() *enrollment.Certificate { return new(enrollment.Certificate) },
		store.Index[*enrollment.Certificate]{Bucket: IndexCertificatesByRegistration, Of: func(c *enrollment.Certificate) []string { return []string{c.RegistrationID} }},
		store.Index[*enrollment.Certificate]{Bucket: IndexCertificatesRevoked, Of: revokedIndex},
	)
}

// Operations is the collection of register operations on b.
func Operations(b store.Backend, now func() time.Time) *store.Collection[*enrollment.Operation] {
	if now == nil {
		now = time.Now
	}
	return store.NewCollection(b, BucketOperations, now, func() *enrollment.Operation { return new(enrollment.Operation) },
		store.Index[*enrollment.Operation]{Bucket: IndexOperationsAssigning, Of: assigningIndex},
	)
}

// assigningIndex indexes an operation by registration ID while it is
// assigning.
func assigningIndex(o *enrollment.Operation) []string {
	if o.Status == enrollment.RegistrationAssigning {
		return []string{o.RegistrationID}
	}
	return nil
}
