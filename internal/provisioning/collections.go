package provisioning

import (
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Buckets the pipeline owns, besides the store.Store collections.
const (
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
