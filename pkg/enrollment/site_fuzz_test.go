package enrollment

import "testing"

// FuzzDecodeSite: a site body decodes into a valid site or an error.
func FuzzDecodeSite(f *testing.F) {
	f.Add([]byte(`{"name":"plant-1","hubs":["hub.example.net"]}`))
	f.Add([]byte(`{"name":"Plant","hubs":[]}`))
	f.Add([]byte(`{"name":"a","hubs":["b","b"],"gateways":[{"registrationId":"g"}],"etag":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSite(b)
		if err != nil {
			return
		}
		if ValidateSiteName(s.Name) != nil || s.Gateways != nil || s.ETag != "" {
			t.Fatalf("accepted %+v", s)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded site does not validate: %v", err)
		}
	})
}
