package port

import "errors"

// Sentinel errors of the pipeline. Every error Register, OperationStatus
// and Status return wraps one of them, or is a server fault (a store or
// issuer failure, a cancelled context). The transport maps them in one
// place (internal/devicewire).
var (
	// ErrUnauthorized: the device did not prove its identity, or proved an
	// identity that no enrollment admits. Nothing is stored.
	ErrUnauthorized = errors.New("provisioning: unauthorized")
	// ErrNotFound: no registration record (Status) or no operation of this
	// device (OperationStatus; an operation of another device is not found
	// either).
	ErrNotFound = errors.New("provisioning: not found")
	// ErrInvalid: the request itself is bad (a registration ID that is not
	// valid, a CSR that is malformed, weak or names another subject).
	// Nothing is stored.
	ErrInvalid = errors.New("provisioning: invalid request")
	// ErrThrottled: a rate limit was hit (a *limits.ThrottledError of
	// Config.Limits, or another registration of the device is still
	// assigning); the transport answers 429 with Retry-After. Nothing is
	// stored.
	ErrThrottled = errors.New("provisioning: throttled")
	// ErrUnavailable: the service cannot complete registrations for now
	// through no fault of the device (an Issuer whose CA is not valid:
	// an edge gateway whose delegated CA expired while it was offline);
	// the transport answers 503 with Retry-After, and the device retries
	// once the operator (or the gateway's renewal) has fixed it.
	ErrUnavailable = errors.New("provisioning: temporarily unavailable")
)
