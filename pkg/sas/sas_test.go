package sas

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	testKey = mustB64("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")
	testNow = time.Unix(1_700_000_000, 0)
)

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDeriveDeviceKeyVector(t *testing.T) {
	// The test vector of docs/protocol.md#symmetric-keys-and-sas-tokens.
	got := base64.StdEncoding.EncodeToString(DeriveDeviceKey(testKey, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"))
	if want := "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="; got != want {
		t.Fatalf("DeriveDeviceKey = %s, want %s", got, want)
	}
	got64, err := DeriveDeviceKeyBase64("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==", "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if err != nil || got64 != got {
		t.Fatalf("DeriveDeviceKeyBase64 = %q, %v", got64, err)
	}
	if _, err := DeriveDeviceKeyBase64("not base64!", "x"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad group key: err = %v, want ErrMalformed", err)
	}
}

// sdkToken builds a token the way a given SDK lays it out: sr as the SDK
// writes it (and signs it), the fields in the SDK's order.
func sdkToken(key []byte, sr string, se int64, order ...string) string {
	fields := map[string]string{
		"sr":  sr,
		"sig": url.QueryEscape(Sign(key, sr, se)),
		"se":  strconv.FormatInt(se, 10),
		"skn": "registration",
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, k+"="+fields[k])
	}
	return "SharedAccessSignature " + strings.Join(parts, "&")
}

func TestParseSDKShapes(t *testing.T) {
	const resource = "0ne00000001/registrations/sym:dev.1_x"
	se := testNow.Add(time.Hour).Unix()
	tests := []struct {
		name, sr, token string
	}{
		{"node symmetric key: raw sr, sr sig skn se", resource, ""},
		{"node tpm: %2F upper-case", "0ne00000001%2Fregistrations%2Fsym%3Adev.1_x", ""},
		{"c sdk: %2f lower-case, sr sig se skn", "0ne00000001%2fregistrations%2fsym%3adev.1_x", ""},
		{"lower-case scheme", resource, strings.Replace(sdkToken(testKey, resource, se, "sr", "sig", "se", "skn"), "SharedAccessSignature", "sharedaccesssignature", 1)},
		{"no skn, se first", resource, sdkToken(testKey, resource, se, "se", "sr", "sig")},
		{"surrounding whitespace", resource, "  " + sdkToken(testKey, resource, se, "sr", "sig", "se") + "\t"},
	}
	orders := [][]string{{"sr", "sig", "skn", "se"}, {"sr", "sig", "se", "skn"}}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token
			if tok == "" {
				tok = sdkToken(testKey, tc.sr, se, orders[i%2]...)
			}
			got, err := Parse(tok)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Resource != tc.sr {
				t.Errorf("Resource = %q, want %q (as sent)", got.Resource, tc.sr)
			}
			dec, err := got.DecodedResource()
			if err != nil || dec != resource {
				t.Errorf("DecodedResource = %q, %v; want %q", dec, err, resource)
			}
			if !got.Expiry.Equal(time.Unix(se, 0)) {
				t.Errorf("Expiry = %v", got.Expiry)
			}
			if err := got.Verify(testKey, testNow, 0); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	const sig = "sig=AAAA"
	tests := []struct{ name, token string }{
		{"empty", ""},
		{"no scheme", "sr=a&" + sig + "&se=1"},
		{"other scheme", "Bearer sr=a&" + sig + "&se=1"},
		{"scheme glued", "SharedAccessSignaturesr=a&" + sig + "&se=1"},
		{"scheme only", "SharedAccessSignature "},
		{"missing sr", "SharedAccessSignature " + sig + "&se=1"},
		{"missing sig", "SharedAccessSignature sr=a&se=1"},
		{"missing se", "SharedAccessSignature sr=a&" + sig},
		{"empty sr", "SharedAccessSignature sr=&" + sig + "&se=1"},
		{"duplicate sr", "SharedAccessSignature sr=a&sr=b&" + sig + "&se=1"},
		{"duplicate sig", "SharedAccessSignature sr=a&" + sig + "&" + sig + "&se=1"},
		{"duplicate skn", "SharedAccessSignature sr=a&" + sig + "&se=1&skn=a&skn=b"},
		{"unknown field", "SharedAccessSignature sr=a&" + sig + "&se=1&foo=bar"},
		{"upper-case field name", "SharedAccessSignature SR=a&" + sig + "&se=1"},
		{"field without =", "SharedAccessSignature sr=a&" + sig + "&se=1&skn"},
		{"trailing &", "SharedAccessSignature sr=a&" + sig + "&se=1&"},
		{"se not a number", "SharedAccessSignature sr=a&" + sig + "&se=soon"},
		{"se signed", "SharedAccessSignature sr=a&" + sig + "&se=+1"},
		{"se negative", "SharedAccessSignature sr=a&" + sig + "&se=-1"},
		{"se too large", "SharedAccessSignature sr=a&" + sig + "&se=99999999999999999999"},
		{"sig not base64", "SharedAccessSignature sr=a&sig=***&se=1"},
		{"sig empty", "SharedAccessSignature sr=a&sig=&se=1"},
		{"sig bad escape", "SharedAccessSignature sr=a&sig=AA%zz&se=1"},
		{"sr bad escape", "SharedAccessSignature sr=a%2&" + sig + "&se=1"},
		{"too long", "SharedAccessSignature sr=" + strings.Repeat("a", MaxTokenLength) + "&" + sig + "&se=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tok, err := Parse(tc.token); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %+v, %v; want ErrMalformed", tok, err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	const resource = "0ne00000001/registrations/dev1"
	other := make([]byte, 32)
	expiry := testNow.Add(time.Minute)
	tests := []struct {
		name    string
		key     []byte
		token   string
		now     time.Time
		skew    time.Duration
		wantErr error
	}{
		{"valid", testKey, Build(testKey, resource, "registration", expiry), testNow, 0, nil},
		{"valid at the expiry second", testKey, Build(testKey, resource, "", expiry), expiry, 0, nil},
		{"expired", testKey, Build(testKey, resource, "", expiry), expiry.Add(time.Second), 0, ErrExpired},
		{"expired but within skew", testKey, Build(testKey, resource, "", expiry), expiry.Add(4 * time.Minute), 5 * time.Minute, nil},
		{"expired beyond skew", testKey, Build(testKey, resource, "", expiry), expiry.Add(6 * time.Minute), 5 * time.Minute, ErrExpired},
		{"wrong key", other, Build(testKey, resource, "", expiry), testNow, 0, ErrSignature},
		{"expiry changed after signing", testKey, strings.Replace(Build(testKey, resource, "", expiry), "se="+strconv.FormatInt(expiry.Unix(), 10), "se="+strconv.FormatInt(expiry.Unix()+3600, 10), 1), testNow, 0, ErrSignature},
		{"expiry re-spelled with a leading zero", testKey, strings.Replace(Build(testKey, resource, "", expiry), "se=", "se=0", 1), testNow, 0, ErrSignature},
		{"resource changed after signing", testKey, strings.Replace(Build(testKey, resource, "", expiry), "dev1", "dev2", 1), testNow, 0, ErrSignature},
		{"resource re-encoded after signing", testKey, strings.Replace(Build(testKey, resource, "", expiry), "/", "%2F", 2), testNow, 0, ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Parse(tc.token)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := tok.Verify(tc.key, tc.now, tc.skew); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	expiry := time.Unix(1_700_003_600, 0)
	tests := []struct {
		name, resource, keyName string
		wantPrefix, wantSuffix  string
	}{
		{"service token", "zdps.example.com:8443", "provisioningserviceowner", "SharedAccessSignature sr=zdps.example.com:8443&sig=", "&se=1700003600&skn=provisioningserviceowner"},
		{"device token without key name", "0ne1%2Fregistrations%2Fd", "", "SharedAccessSignature sr=0ne1%2Fregistrations%2Fd&sig=", "&se=1700003600"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Build(testKey, tc.resource, tc.keyName, expiry)
			if !strings.HasPrefix(got, tc.wantPrefix) || !strings.HasSuffix(got, tc.wantSuffix) {
				t.Fatalf("Build = %q", got)
			}
			sig := strings.SplitN(strings.SplitN(got, "&sig=", 2)[1], "&", 2)[0]
			if strings.ContainsAny(sig, "+/=") {
				t.Fatalf("sig not URL-encoded: %q", sig)
			}
			tok, err := Parse(got)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tok.KeyName != tc.keyName || tok.Resource != tc.resource {
				t.Fatalf("round trip: %+v", tok)
			}
			if err := tok.Verify(testKey, expiry, 0); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// TestSignKnownAnswer pins the signed string (resource + "\n" + se) to a
// value computed outside Go.
func TestSignKnownAnswer(t *testing.T) {
	got := Sign([]byte("key"), "res", 1)
	// HMAC-SHA256("key", "res\n1"), computed with openssl dgst -sha256 -hmac key.
	const want = "gVE8IpTZXui9NATbkwclwQKUifJ/uZIRtukyk60oPOk="
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}
