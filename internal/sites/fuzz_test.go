package sites

import (
	"encoding/json"
	"testing"

	"github.com/zdps/zdps/pkg/dps"
)

// FuzzDecodeRecord: whatever a gateway pushes as a record, decoding
// answers a value or an error, never panics, and what it accepts has the
// shape ingest relies on.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"registrationId":"dev-1","deviceId":"dev-1","assignedHub":"hub.example.net","status":"assigned","etag":"e1","createdDateTimeUtc":"2026-01-01T00:00:00Z"}`), "", "symmetricKey", "")
	f.Add([]byte(`{"registrationId":"dev-1","status":"failed"}`), "grp", "x509", "AAAA")
	f.Add([]byte(`[]`), "", "", "MIIB")
	f.Fuzz(func(t *testing.T, reg []byte, group, att, cert string) {
		in, err := decodeRecord(&dps.GatewayRecord{Registration: reg, EnrollmentGroupID: group, AttestationType: att, Certificate: cert})
		if err != nil {
			return
		}
		if in.RegistrationID == "" || in.ETag == "" || in.CreatedDateTimeUTC == nil || in.Status != "assigned" {
			t.Fatalf("accepted %+v", in.RegistrationState)
		}
		if in.Cert != nil && (in.Cert.IsCA || in.Serial == "") {
			t.Fatal("accepted a CA or no serial")
		}
	})
}

// FuzzDecodeCursor: a cursor is the gateway's to send back; any string
// decodes to a cursor of the site in a known phase, or is refused.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(cursor{V: 1, Site: "plant", Phase: phaseFeed, Seq: 42}.encode())
	f.Add(cursor{V: 1, Site: "plant", Phase: phaseEnrollments, After: "dev-1", Seq: 3}.encode())
	f.Add("eyJ2IjoxfQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, _, err := DecodeCursor(s, "plant")
		if err != nil {
			return
		}
		if c.Site != "plant" || c.V != 1 {
			t.Fatalf("accepted %+v", c)
		}
		switch c.Phase {
		case phaseSite, phaseEnrollments, phaseGroups, phaseFeed:
		default:
			t.Fatalf("phase %q", c.Phase)
		}
		b, _ := json.Marshal(c)
		if len(b) > 4*MaxCursorLength {
			t.Fatal("cursor grew")
		}
	})
}
