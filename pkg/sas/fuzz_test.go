package sas

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary strings to Parse (it must never panic, and what
// it accepts must re-serialise to a token that parses to the same value),
// and uses the input as a resource for a Build→Parse→Verify round trip.
func FuzzParse(f *testing.F) {
	f.Add("SharedAccessSignature sr=0ne00000001/registrations/dev1&sig=Y2Fub3QgYmUgYSByZWFsIHNpZw%3D%3D&skn=registration&se=1700003600")
	f.Add("SharedAccessSignature sr=0ne00000001%2fregistrations%2fsym%3adev.1_x&sig=AAAA&se=1700002400&skn=registration")
	f.Add("sharedaccesssignature se=1&sr=host.example:8443&sig=AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		if tok, err := Parse(s); err == nil {
			again, err := Parse(render(tok))
			if err != nil {
				t.Fatalf("re-serialised token does not parse: %v", err)
			}
			if again.Resource != tok.Resource || !bytes.Equal(again.Signature, tok.Signature) ||
				again.RawExpiry != tok.RawExpiry || !again.Expiry.Equal(tok.Expiry) || again.KeyName != tok.KeyName {
				t.Fatalf("round trip changed the token: %+v != %+v", again, tok)
			}
			if _, err := tok.DecodedResource(); err != nil {
				t.Fatalf("accepted sr does not decode: %v", err)
			}
		}

		if s == "" || len(s) > 300 { // escaped twice (sr, skn), it must fit MaxTokenLength
			return
		}
		resource := escape(s)
		expiry := time.Unix(1_700_000_000, 0)
		tok, err := Parse(Build([]byte(s), resource, s, expiry))
		if err != nil {
			t.Fatalf("Build output does not parse: %v", err)
		}
		if dec, err := tok.DecodedResource(); err != nil || dec != s {
			t.Fatalf("DecodedResource = %q, %v; want %q", dec, err, s)
		}
		if tok.KeyName != s {
			t.Fatalf("KeyName = %q, want %q", tok.KeyName, s)
		}
		if err := tok.Verify([]byte(s), expiry, 0); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}

// escape percent-encodes everything Parse treats specially, writing a space
// as %20 (Parse, like Azure, reads '+' literally).
func escape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

func render(t *Token) string {
	return "SharedAccessSignature sr=" + t.Resource +
		"&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(t.Signature)) +
		"&se=" + t.RawExpiry + "&skn=" + escape(t.KeyName)
}
