package port

import (
	"context"

	"github.com/zdps/zdps/pkg/enrollment"
)

type prefetchKey struct{}

type prefetched struct {
	regID string
	e     *enrollment.IndividualEnrollment
}

// PrefetchedEnrollment returns the individual enrollment of registrationID
// (nil when there is none) that this request has read already, for an
// attestor's lookup; found is false when it has not read it. It was read
// moments before, outside any transaction, as the attestor's own read
// would be; persist reads it again in its transaction (revocation_guard.go).
func PrefetchedEnrollment(ctx context.Context, registrationID string) (e *enrollment.IndividualEnrollment, found bool) {
	p, ok := ctx.Value(prefetchKey{}).(prefetched)
	if !ok || p.regID != enrollment.Key(registrationID) {
		return nil, false
	}
	return p.e, true
}

// WithPrefetched is ctx carrying the individual enrollment e of
// registrationID (nil: it has none) the pipeline has just read, for
// PrefetchedEnrollment.
func WithPrefetched(ctx context.Context, registrationID string, e *enrollment.IndividualEnrollment) context.Context {
	return context.WithValue(ctx, prefetchKey{}, prefetched{regID: enrollment.Key(registrationID), e: e})
}
