package enrollment

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// The decoders face every request body of the service API. The fuzz
// targets check that they never panic, that every error wraps ErrInvalid,
// and the round-trip property: a value that decodes, once re-encoded,
// decodes again to an equal value and re-encodes to the same bytes (stored
// documents are stable). Seeds live in testdata/fuzz/<FuzzName>/.

func roundTrip[T any](t *testing.T, b []byte, decode func([]byte) (T, error)) {
	v, err := decode(b)
	if err != nil {
		var ve *ValidationError
		if !errorsAs(err, &ve) || !isInvalid(err) {
			t.Fatalf("error %v (%T) is not a ValidationError wrapping ErrInvalid", err, err)
		}
		return
	}
	enc, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encoding an accepted value: %v", err)
	}
	again, err := decode(enc)
	if err != nil {
		t.Fatalf("re-encoded value does not decode: %v\n%s", err, enc)
	}
	if !reflect.DeepEqual(v, again) {
		t.Fatalf("round trip changed the value:\n%#v\n%#v\n%s", v, again, enc)
	}
	enc2, err := json.Marshal(again)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("re-encoding is not stable (%v):\n%s\n%s", err, enc, enc2)
	}
}

func FuzzDecodeIndividualEnrollment(f *testing.F) {
	f.Add([]byte(`{"registrationId":"dev1","attestation":{"type":"symmetricKey"}}`))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, DecodeIndividualEnrollment) })
}

func FuzzDecodeEnrollmentGroup(f *testing.F) {
	f.Add([]byte(`{"enrollmentGroupId":"g1","attestation":{"type":"symmetricKey"}}`))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, DecodeEnrollmentGroup) })
}

func FuzzDecodeBulkEnrollments(f *testing.F) {
	f.Add([]byte(`{"mode":"create","enrollments":[{"registrationId":"dev1","attestation":{"type":"symmetricKey"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, DecodeBulkEnrollments)
		roundTrip(t, b, DecodeBulkEnrollmentGroups)
	})
}

func errorsAs(err error, target **ValidationError) bool { return errors.As(err, target) }

func isInvalid(err error) bool { return errors.Is(err, ErrInvalid) }
