package enrollment

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The policy is part of the wire form of groups and enrollments: it
// decodes strictly, is validated with a field path under firmwarePolicy,
// survives Redacted and Clone, and round-trips.
func TestFirmwarePolicyInDocuments(t *testing.T) {
	body := `{"enrollmentGroupId":"g1","attestation":{"type":"symmetricKey"},
	  "firmwarePolicy":{"vendor":"acme","layers":[{"layer":1,"minSvn":3,"allowedFwids":[{"hashAlg":"sha256","digest":"` + strings.Repeat("AA", 32) + `"}]}]}}`
	g, err := DecodeEnrollmentGroup([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if d := g.FirmwarePolicy.Layers[0].AllowedFWIDs[0].Digest; d != strings.Repeat("aa", 32) {
		t.Fatalf("digest not normalised: %s", d)
	}
	r := g.Redacted()
	r.FirmwarePolicy.Layers[0].AllowedFWIDs[0].Digest = "changed"
	if g.FirmwarePolicy.Layers[0].AllowedFWIDs[0].Digest == "changed" {
		t.Fatal("Redacted shares the policy with the original")
	}
	enc, _ := json.Marshal(g)
	again, err := DecodeEnrollmentGroup(enc)
	if err != nil || !reflect.DeepEqual(again.FirmwarePolicy, g.FirmwarePolicy) {
		t.Fatalf("round trip: %v", err)
	}

	for _, bad := range []struct{ body, field string }{
		{`{"registrationId":"d1","attestation":{"type":"symmetricKey"},"firmwarePolicy":{"layers":[{"layer":1,"minSvn":-2}]}}`, "firmwarePolicy.layers[0].minSvn"},
		{`{"registrationId":"d1","attestation":{"type":"symmetricKey"},"firmwarePolicy":{"vendr":"x"}}`, "vendr"},
	} {
		_, err := DecodeIndividualEnrollment([]byte(bad.body))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != bad.field {
			t.Errorf("%s: got %v, want field %s", bad.body, err, bad.field)
		}
	}
}
