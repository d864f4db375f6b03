package enrollment

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
)

// wantInvalid checks that err is a ValidationError for field (wrapping
// ErrInvalid), or nil when field is "-".
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if field == "-" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error = %v, want ErrInvalid", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	if ve.Field != field {
		t.Fatalf("field = %q, want %q (error: %v)", ve.Field, field, err)
	}
	if ve.Reason == "" {
		t.Fatal("empty reason")
	}
}

func TestValidationErrorMessage(t *testing.T) {
	err := ValidateRegistrationID(strings.Repeat("a", 129))
	if got, want := err.Error(), "registrationId: must be at most 128 characters"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestValidateRegistrationID(t *testing.T) {
	tests := []struct {
		name, id string
		ok       bool
	}{
		{"simple", "dev1", true},
		{"one character", "a", true},
		{"all specials inside", "a:b.c_d-e", true},
		{"mixed case", "Sym:Dev.1_X", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"leading dash", "-dev", false},
		{"trailing dot", "dev.", false},
		{"leading colon", ":dev", false},
		{"trailing underscore", "dev_", false},
		{"single special", "-", false},
		{"space", "dev 1", false},
		{"slash", "dev/1", false},
		{"non-ASCII letter", "dév", false},
		{"percent", "dev%20", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []struct {
				field string
				fn    func(string) error
			}{{"registrationId", ValidateRegistrationID}, {"enrollmentGroupId", ValidateGroupID}} {
				err := f.fn(tc.id)
				if tc.ok {
					wantInvalid(t, err, "-")
				} else {
					wantInvalid(t, err, f.field)
				}
			}
		})
	}
}

// TestValidateIDNamesTheCharacter: the refusal names the character as
// typed and its position in characters, not a byte of its UTF-8 form.
// Each want starts with the field, which picks the validator.
func TestValidateIDNamesTheCharacter(t *testing.T) {
	tests := []struct{ id, want string }{
		{"dév-☃", `registrationId: character 'é' at position 2 is not allowed`},
		{"dev-☃", `registrationId: character '☃' at position 5 is not allowed`},
		{"☃", `registrationId: character '☃' at position 1 is not allowed`},
		{"日本-1", `registrationId: character '日' at position 1 is not allowed`},
		{"a😀b", `registrationId: character '😀' at position 2 is not allowed`},
		{"dev 1", `registrationId: character ' ' at position 4 is not allowed`},
		{"ab\xffc", `registrationId: character '�' at position 3 is not allowed`},
		{"é-", `registrationId: character 'é' at position 1 is not allowed`},
		{"ab-", `registrationId: must not start or end with '-'`},
		{"-ab", `registrationId: must not start or end with '-'`},
		{"grp-é", `enrollmentGroupId: character 'é' at position 5 is not allowed`},
		{"pölicy", `keyName: character 'ö' at position 2 is not allowed`},
	}
	validators := map[string]func(string) error{"registrationId": ValidateRegistrationID, "enrollmentGroupId": ValidateGroupID, "keyName": ValidatePolicyName}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			field, _, _ := strings.Cut(tc.want, ":")
			err := validators[field](tc.id)
			wantInvalid(t, err, field)
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to start with %q", err, tc.want)
			}
		})
	}
}

func TestValidateHostName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"hub.example.com", true},
		{"hub-1.example.com:8443", true},
		{"localhost", true},
		{"127.0.0.1:443", true},
		{"", false},
		{"hub..example.com", false},
		{"-hub.example.com", false},
		{"hub_1.example.com", false},
		{"hub.example.com:", false},
		{"hub.example.com:0", false},
		{"hub.example.com:65536", false},
		{"hub.example.com:08", false},
		{"hub.example.com:1:2", false},
		{"https://hub.example.com", false},
		{strings.Repeat("a", 64) + ".com", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateHostName(tc.name)
			if tc.ok {
				wantInvalid(t, err, "-")
			} else {
				wantInvalid(t, err, "name")
			}
		})
	}
}

func TestDecodeKey(t *testing.T) {
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), true},
		{"64 bytes", base64.StdEncoding.EncodeToString(make([]byte, 64)), true},
		{"15 bytes", base64.StdEncoding.EncodeToString(make([]byte, 15)), false},
		{"65 bytes", base64.StdEncoding.EncodeToString(make([]byte, 65)), false},
		{"not base64", "this is not base64!!", false},
		{"unpadded", strings.TrimRight(base64.StdEncoding.EncodeToString(make([]byte, 17)), "="), false},
		{"url alphabet", "____________________________", false},
		{"embedded newline", base64.StdEncoding.EncodeToString(make([]byte, 12)) + "\n" + base64.StdEncoding.EncodeToString(make([]byte, 12)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeKey(tc.key)
			if tc.ok != (err == nil) {
				t.Fatalf("DecodeKey error = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func readPEM(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseCertificate(t *testing.T) {
	pemText := readPEM(t, "device.pem")
	body := strings.Join(strings.Split(pemText, "\n")[1:len(strings.Split(pemText, "\n"))-2], "")
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"pem", pemText, true},
		{"pem with surrounding whitespace", "\n  " + pemText + "\n\n", true},
		{"base64 der", body, true},
		{"base64 der wrapped", strings.Join(strings.Split(pemText, "\n")[1:len(strings.Split(pemText, "\n"))-2], "\n"), true},
		{"empty", "", false},
		{"two pem blocks", pemText + readPEM(t, "ca.pem"), false},
		{"pem of a key", strings.ReplaceAll(pemText, "CERTIFICATE", "PRIVATE KEY"), false},
		{"truncated pem", pemText[:100], false},
		{"base64 of garbage", base64.StdEncoding.EncodeToString([]byte("garbage")), false},
		{"not base64", "not a certificate", false},
		{"too long", strings.Repeat("A", MaxCertificateLength+1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCertificate(tc.in)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if info := CertificateInfo(c); info.SubjectName != "CN=dev-x509-01,O=zdps test" || info.SerialNumber != "1001" || info.Version != 3 {
					t.Fatalf("CertificateInfo = %+v", info)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestNormalizeRights(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"EnrollmentRead", "EnrollmentRead", true},
		{"EnrollmentWrite,EnrollmentRead", "EnrollmentRead, EnrollmentWrite", true},
		{" enrollmentread ,  SERVICECONFIG ", "ServiceConfig, EnrollmentRead", true},
		{"EnrollmentRead, EnrollmentRead", "EnrollmentRead", true},
		{strings.Join(AllRights, ","), strings.Join(AllRights, ", "), true},
		{"", "", false},
		{"  ", "", false},
		{"EnrollmentRead,", "", false},
		{"EnrollmentRead,,EnrollmentWrite", "", false},
		{"Admin", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeRights(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("NormalizeRights(%q) = %q, %v", tc.in, got, err)
			}
			if err != nil {
				wantInvalid(t, err, "rights")
			}
		})
	}
}
