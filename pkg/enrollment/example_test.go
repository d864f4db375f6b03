package enrollment_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zdps/zdps/pkg/enrollment"
)

// A create request: decode strictly, generate the keys the caller left
// empty (crypto/rand.Reader in production), store, and answer with the
// redacted form.
func ExampleDecodeIndividualEnrollment() {
	body := []byte(`{"registrationId":"sensor-42","attestation":{"type":"symmetricKey"},"allocationPolicy":"Hashed","etag":"ignored"}`)
	e, err := enrollment.DecodeIndividualEnrollment(body)
	if err != nil {
		panic(err)
	}
	if err := e.GenerateMissingKeys(bytes.NewReader(make([]byte, 128))); err != nil {
		panic(err)
	}
	fmt.Println(len(e.Attestation.SymmetricKeys()), "keys generated")
	answer, _ := json.Marshal(e.Redacted())
	fmt.Println(string(answer))
	// Output:
	// 2 keys generated
	// {"registrationId":"sensor-42","attestation":{"type":"symmetricKey","symmetricKey":{}},"provisioningStatus":"enabled","allocationPolicy":"hashed"}
}

// Every decoding error names the field and wraps ErrInvalid.
func ExampleValidationError() {
	_, err := enrollment.DecodeIndividualEnrollment([]byte(`{"registrationId":"-bad","attestation":{"type":"symmetricKey"}}`))
	var ve *enrollment.ValidationError
	fmt.Println(errors.Is(err, enrollment.ErrInvalid), errors.As(err, &ve), ve.Field)
	fmt.Println(err)
	// Output:
	// true true registrationId
	// registrationId: must not start or end with '-'
}
