package enrollment

import "github.com/zdps/zdps/pkg/enrollment/check"

// The Decode functions are the only way request JSON becomes a domain value:
// strict decoding (unknown fields and trailing data are errors), read-only
// fields dropped, then Validate. Every error wraps ErrInvalid.

// decode is every Decode function: strict decoding into a new T, drop
// clears its read-only fields, then Validate.
func decode[T any, P interface {
	*T
	Validate() error
}](b []byte, drop func(P)) (P, error) {
	v := P(new(T))
	if err := check.Decode(b, v); err != nil {
		return nil, err
	}
	drop(v)
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return v, nil
}

// DecodeIndividualEnrollment decodes and validates an individual enrollment
// from a request body. The etag, timestamps and registrationState are
// accepted (clients echo GET answers back) but cleared: the store owns them,
// and the If-Match header carries the ETag.
func DecodeIndividualEnrollment(b []byte) (*IndividualEnrollment, error) {
	return decode(b, func(e *IndividualEnrollment) { e.Versioned, e.RegistrationState = Versioned{}, nil })
}

// DecodeEnrollmentGroup is DecodeIndividualEnrollment for groups.
func DecodeEnrollmentGroup(b []byte) (*EnrollmentGroup, error) {
	return decode(b, func(g *EnrollmentGroup) { g.Versioned = Versioned{} })
}

// DecodeHub decodes and validates a linked hub.
func DecodeHub(b []byte) (*Hub, error) {
	return decode(b, func(h *Hub) {
		h.Versioned = Versioned{}
		h.DeviceCount = nil // read-only
	})
}

// DecodeSharedAccessPolicy decodes and validates a shared access policy.
// Empty keys stay empty: the caller generates them (GenerateMissingKeys).
func DecodeSharedAccessPolicy(b []byte) (*SharedAccessPolicy, error) {
	return decode(b, func(p *SharedAccessPolicy) { p.Versioned = Versioned{} })
}

// DecodeSettings decodes and validates the instance settings. The ID scope
// is read-only (fixed at first start) and cleared.
func DecodeSettings(b []byte) (*Settings, error) {
	return decode(b, func(s *Settings) { s.Versioned, s.IDScope = Versioned{}, "" })
}
