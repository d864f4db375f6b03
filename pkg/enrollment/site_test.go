package enrollment

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSiteField(t *testing.T) {
	const body = `{"registrationId":"dev-1","attestation":{"type":"symmetricKey","symmetricKey":{}},"site":"plant-1"}`
	e, err := DecodeIndividualEnrollment([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if e.Site != "plant-1" {
		t.Fatalf("site %q", e.Site)
	}
	b, _ := json.Marshal(e)
	if !strings.Contains(string(b), `"site":"plant-1"`) {
		t.Fatalf("site not in the wire form: %s", b)
	}
	e.Site = ""
	b, _ = json.Marshal(e)
	if strings.Contains(string(b), `"site"`) {
		t.Fatalf("empty site on the wire: %s", b)
	}
	for _, bad := range []string{"Plant", "-plant", "plant-", "pl ant", "plänt", strings.Repeat("a", 64)} {
		_, err := DecodeEnrollmentGroup([]byte(`{"enrollmentGroupId":"g","attestation":{"type":"symmetricKey","symmetricKey":{}},"site":` + strconvQuote(bad) + `}`))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "site" {
			t.Errorf("site %q: %v, want a site validation error", bad, err)
		}
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestDecodeSite(t *testing.T) {
	s, err := DecodeSite([]byte(`{"name":"ship","hubs":["b.example.net","a.example.net","b.example.net"],"etag":"x","gateways":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Hubs, ",") != "a.example.net,b.example.net" || s.ETag != "" || s.Gateways != nil {
		t.Fatalf("decoded %+v", s)
	}
	for _, bad := range []string{`{"name":"ship","hubs":["no such host!"]}`, `{"name":"","hubs":[]}`, `{"name":"ship","extra":1}`} {
		if _, err := DecodeSite([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
