package port

import (
	"errors"
	"fmt"
)

// Refusal carries a fixed, human-readable reason for refusing a request,
// for the server log only (the device sees a generic answer). The reason
// is chosen by code, never built from device input, so it may be logged
// where the wrapped error's message (which can quote what the device sent)
// may not.
type Refusal struct {
	// Reason is a short constant phrase ("CN does not match
	// registrationId", "certificate revoked").
	Reason string
	// Err is the refusal itself; it wraps ErrUnauthorized or ErrInvalid.
	Err error
}

// Refuse wraps err, a refusal of device input, with a fixed reason for the
// log. reason must be a constant of the caller, never device input.
func Refuse(reason string, err error) error { return &Refusal{Reason: reason, Err: err} }

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// ReasonOf is the reason of the first Refusal in err's chain, "" when
// there is none.
func ReasonOf(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// Sentinel pairs a verifier's sentinel error with the fixed reason an
// adapter's refusal wrapping it is logged with.
type Sentinel struct {
	Err    error
	Reason string
}

// RefuseAs is err refused as kind (ErrUnauthorized or ErrInvalid, maybe
// wrapped with a word of context) with the reason of the first of
// sentinels that err wraps; ok is false when it wraps none of them.
func RefuseAs(err, kind error, sentinels []Sentinel) (refusal error, ok bool) {
	for _, s := range sentinels {
		if errors.Is(err, s.Err) {
			return Refuse(s.Reason, fmt.Errorf("%w: %w", kind, err)), true
		}
	}
	return nil, false
}
