package firmware

import (
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
		in        Policy
		want      *Policy // normalised form, when valid
		wantField string  // the invalid field, when not
	}{
		{name: "empty policy requires a TcbInfo", in: Policy{}, want: &Policy{}},
		{name: "normalised",
			in: Policy{ForbiddenFlags: []string{"DEBUG", "notsecure"}, Layers: []LayerPolicy{
				{Layer: 1, MinSVN: &svn, AllowedFWIDs: []Digest{{HashAlg: "SHA256", Digest: d32}, {HashAlg: "2.16.840.1.101.3.4.2.2", Digest: strings.Repeat("0", 96)}}},
				{Layer: 0, AllowedFWIDs: []Digest{}},
			}},
			want: &Policy{ForbiddenFlags: []string{"debug", "notSecure"}, Layers: []LayerPolicy{
				{Layer: 1, MinSVN: &svn, AllowedFWIDs: []Digest{{HashAlg: "sha256", Digest: strings.ToLower(d32)}, {HashAlg: "sha384", Digest: strings.Repeat("0", 96)}}},
				{Layer: 0},
			}}},
		{name: "other algorithm by OID", in: Policy{Layers: []LayerPolicy{{Layer: 2, AllowedFWIDs: []Digest{{HashAlg: "1.2.156.10197.1.401", Digest: "00ff"}}}}},
			want: &Policy{Layers: []LayerPolicy{{Layer: 2, AllowedFWIDs: []Digest{{HashAlg: "1.2.156.10197.1.401", Digest: "00ff"}}}}}},
		{name: "duplicate layer", in: Policy{Layers: []LayerPolicy{{Layer: 1}, {Layer: 1}}}, wantField: "layers[1].layer"},
		{name: "negative layer", in: Policy{Layers: []LayerPolicy{{Layer: -1}}}, wantField: "layers[0].layer"},
		{name: "negative svn", in: Policy{Layers: []LayerPolicy{{Layer: 1, MinSVN: &neg}}}, wantField: "layers[0].minSvn"},
		{name: "short sha256", in: Policy{Layers: []LayerPolicy{{Layer: 1, AllowedFWIDs: []Digest{{HashAlg: "sha256", Digest: "abcd"}}}}}, wantField: "layers[0].allowedFwids[0].digest"},
		{name: "not hex", in: Policy{Layers: []LayerPolicy{{Layer: 1, AllowedFWIDs: []Digest{{HashAlg: "sha256", Digest: strings.Repeat("zz", 32)}}}}}, wantField: "layers[0].allowedFwids[0].digest"},
		{name: "sha1", in: Policy{Layers: []LayerPolicy{{Layer: 1, AllowedFWIDs: []Digest{{HashAlg: "1.3.14.3.2.26", Digest: strings.Repeat("00", 20)}}}}}, wantField: "layers[0].allowedFwids[0].hashAlg"},
		{name: "unknown algorithm name", in: Policy{Layers: []LayerPolicy{{Layer: 1, AllowedFWIDs: []Digest{{HashAlg: "md5", Digest: "00"}}}}}, wantField: "layers[0].allowedFwids[0].hashAlg"},
		{name: "unknown flag", in: Policy{ForbiddenFlags: []string{"verbose"}}, wantField: "forbiddenFlags[0]"},
		{name: "repeated flag", in: Policy{ForbiddenFlags: []string{"debug", "Debug"}}, wantField: "forbiddenFlags[1]"},
		{name: "control character in vendor", in: Policy{Vendor: "a\nb"}, wantField: "vendor"},
		{name: "long model", in: Policy{Layers: []LayerPolicy{{Layer: 0, Model: strings.Repeat("m", MaxStringLength+1)}}}, wantField: "layers[0].model"},
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
			var ve *FieldError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) || ve.Field != tc.wantField {
				t.Fatalf("got %v, want a FieldError on %s", err, tc.wantField)
			}
		})
	}
}

func TestDICEStateSummary(t *testing.T) {
	l, s := int64(1), int64(3)
	st := &DICEState{Measurements: []Measurement{{Layer: &l, SVN: &s, Vendor: "a\"b", FWIDs: []Digest{{HashAlg: "sha256", Digest: "00"}}, Flags: []string{"debug"}}}}
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
