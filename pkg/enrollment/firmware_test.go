package enrollment

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestFirmwarePolicyValidate(t *testing.T) {
	d32 := strings.Repeat("AB", 32)
	svn := int64(2)
	neg := int64(-1)
	cases := []struct {
		name      string
		in        FirmwarePolicy
		want      *FirmwarePolicy // normalised form, when valid
		wantField string          // the invalid field, when not
	}{
		{name: "empty policy requires a TcbInfo", in: FirmwarePolicy{}, want: &FirmwarePolicy{}},
		{name: "normalised",
			in: FirmwarePolicy{ForbiddenFlags: []string{"DEBUG", "notsecure"}, Layers: []FirmwareLayerPolicy{
				{Layer: 1, MinSVN: &svn, AllowedFWIDs: []FirmwareDigest{{HashAlg: "SHA256", Digest: d32}, {HashAlg: "2.16.840.1.101.3.4.2.2", Digest: strings.Repeat("0", 96)}}},
				{Layer: 0, AllowedFWIDs: []FirmwareDigest{}},
			}},
			want: &FirmwarePolicy{ForbiddenFlags: []string{"debug", "notSecure"}, Layers: []FirmwareLayerPolicy{
				{Layer: 1, MinSVN: &svn, AllowedFWIDs: []FirmwareDigest{{HashAlg: "sha256", Digest: strings.ToLower(d32)}, {HashAlg: "sha384", Digest: strings.Repeat("0", 96)}}},
				{Layer: 0},
			}}},
		{name: "other algorithm by OID", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 2, AllowedFWIDs: []FirmwareDigest{{HashAlg: "1.2.156.10197.1.401", Digest: "00ff"}}}}},
			want: &FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 2, AllowedFWIDs: []FirmwareDigest{{HashAlg: "1.2.156.10197.1.401", Digest: "00ff"}}}}}},
		{name: "duplicate layer", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 1}, {Layer: 1}}}, wantField: "layers[1].layer"},
		{name: "negative layer", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: -1}}}, wantField: "layers[0].layer"},
		{name: "negative svn", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 1, MinSVN: &neg}}}, wantField: "layers[0].minSvn"},
		{name: "short sha256", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 1, AllowedFWIDs: []FirmwareDigest{{HashAlg: "sha256", Digest: "abcd"}}}}}, wantField: "layers[0].allowedFwids[0].digest"},
		{name: "not hex", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 1, AllowedFWIDs: []FirmwareDigest{{HashAlg: "sha256", Digest: strings.Repeat("zz", 32)}}}}}, wantField: "layers[0].allowedFwids[0].digest"},
		{name: "sha1", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 1, AllowedFWIDs: []FirmwareDigest{{HashAlg: "1.3.14.3.2.26", Digest: strings.Repeat("00", 20)}}}}}, wantField: "layers[0].allowedFwids[0].hashAlg"},
		{name: "unknown algorithm name", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 1, AllowedFWIDs: []FirmwareDigest{{HashAlg: "md5", Digest: "00"}}}}}, wantField: "layers[0].allowedFwids[0].hashAlg"},
		{name: "unknown flag", in: FirmwarePolicy{ForbiddenFlags: []string{"verbose"}}, wantField: "forbiddenFlags[0]"},
		{name: "repeated flag", in: FirmwarePolicy{ForbiddenFlags: []string{"debug", "Debug"}}, wantField: "forbiddenFlags[1]"},
		{name: "control character in vendor", in: FirmwarePolicy{Vendor: "a\nb"}, wantField: "vendor"},
		{name: "long model", in: FirmwarePolicy{Layers: []FirmwareLayerPolicy{{Layer: 0, Model: strings.Repeat("m", MaxFirmwareStringLength+1)}}}, wantField: "layers[0].model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.in
			err := p.Validate()
			if tc.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(&p, tc.want) {
					t.Fatalf("got  %+v\nwant %+v", p, *tc.want)
				}
				again := *p.Clone()
				if err := again.Validate(); err != nil || !reflect.DeepEqual(again, p) {
					t.Fatalf("validation is not idempotent: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) || ve.Field != tc.wantField {
				t.Fatalf("got %v, want a ValidationError on %s", err, tc.wantField)
			}
		})
	}
}

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

func TestDICEStateSummary(t *testing.T) {
	l, s := int64(1), int64(3)
	st := &DICEState{Measurements: []FirmwareMeasurement{{Layer: &l, SVN: &s, Vendor: "a\"b", FWIDs: []FirmwareDigest{{HashAlg: "sha256", Digest: "00"}}, Flags: []string{"debug"}}}}
	if got, want := st.Summary(), `layer 1 vendor "a\"b" svn 3 sha256:00 debug`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if (*DICEState)(nil).Summary() != "none" || (&DICEState{LegacyRIoT: true}).Summary() != "legacy RIoT (no TcbInfo)" {
		t.Error("summary of no measurements")
	}
	if !st.Equal(st.Clone()) || st.Equal(nil) || !(*DICEState)(nil).Equal(nil) {
		t.Error("Equal")
	}
}
