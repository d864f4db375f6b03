package enrollment

// The Decode functions are the only way request JSON becomes a domain value:
// strict decoding (unknown fields and trailing data are errors), read-only
// fields dropped, then Validate. Every error wraps ErrInvalid.

// DecodeIndividualEnrollment decodes and validates an individual enrollment
// from a request body. The etag, timestamps and registrationState are
// accepted (clients echo GET answers back) but cleared: the store owns them,
// and the If-Match header carries the ETag.
func DecodeIndividualEnrollment(b []byte) (*IndividualEnrollment, error) {
	var e IndividualEnrollment
	if err := strictUnmarshal(b, &e); err != nil {
		return nil, decodeError(err)
	}
	e.Versioned = Versioned{}
	e.RegistrationState = nil
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// DecodeEnrollmentGroup is DecodeIndividualEnrollment for groups.
func DecodeEnrollmentGroup(b []byte) (*EnrollmentGroup, error) {
	var g EnrollmentGroup
	if err := strictUnmarshal(b, &g); err != nil {
		return nil, decodeError(err)
	}
	g.Versioned = Versioned{}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// DecodeHub decodes and validates a linked hub.
func DecodeHub(b []byte) (*Hub, error) {
	var h Hub
	if err := strictUnmarshal(b, &h); err != nil {
		return nil, decodeError(err)
	}
	h.Versioned = Versioned{}
	h.DeviceCount = nil // read-only
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// DecodeSharedAccessPolicy decodes and validates a shared access policy.
// Empty keys stay empty: the caller generates them (GenerateMissingKeys).
func DecodeSharedAccessPolicy(b []byte) (*SharedAccessPolicy, error) {
	var p SharedAccessPolicy
	if err := strictUnmarshal(b, &p); err != nil {
		return nil, decodeError(err)
	}
	p.Versioned = Versioned{}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodeSettings decodes and validates the instance settings. The ID scope
// is read-only (fixed at first start) and cleared.
func DecodeSettings(b []byte) (*Settings, error) {
	var s Settings
	if err := strictUnmarshal(b, &s); err != nil {
		return nil, decodeError(err)
	}
	s.Versioned = Versioned{}
	s.IDScope = ""
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}
