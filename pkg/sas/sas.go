package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors; every error returned by this package wraps one of them.
var (
	// ErrMalformed: the string is not a well-formed SharedAccessSignature.
	ErrMalformed = errors.New("sas: malformed token")
	// ErrExpired: the token's expiry (plus the allowed skew) has passed.
	ErrExpired = errors.New("sas: token expired")
	// ErrSignature: the signature does not match the key.
	ErrSignature = errors.New("sas: signature mismatch")
)

// Scheme is the authorization scheme that prefixes every token.
const Scheme = "SharedAccessSignature"

// MaxTokenLength bounds what Parse reads. Real tokens are a few hundred
// bytes; the bound keeps hostile headers and MQTT passwords cheap.
const MaxTokenLength = 4096

// Token is a parsed SharedAccessSignature.
type Token struct {
	// Resource is sr exactly as sent (not decoded): the signature covers
	// this string. Compare DecodedResource with the expected resource.
	Resource string
	// Signature is the decoded HMAC-SHA256.
	Signature []byte
	// Expiry is se as a time.
	Expiry time.Time
	// RawExpiry is se exactly as sent: the signature covers this string.
	RawExpiry string
	// KeyName is skn (decoded), empty when absent.
	KeyName string
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Parse parses "SharedAccessSignature sr=..&sig=..&se=..[&skn=..]". The
// scheme is matched case-insensitively, the fields are lower-case and may
// come in any order. Errors wrap ErrMalformed and never quote the token.
func Parse(s string) (*Token, error) {
	if len(s) > MaxTokenLength {
		return nil, malformed("longer than %d bytes", MaxTokenLength)
	}
	s = strings.TrimSpace(s)
	if len(s) <= len(Scheme) || !strings.EqualFold(s[:len(Scheme)], Scheme) || (s[len(Scheme)] != ' ' && s[len(Scheme)] != '\t') {
		return nil, malformed("the %q scheme is required", Scheme)
	}
	q := strings.TrimLeft(s[len(Scheme):], " \t")
	var t Token
	var haveSR, haveSig, haveSE, haveSKN bool
	for part := range strings.SplitSeq(q, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, malformed("field without '='")
		}
		var seen *bool
		switch k {
		case "sr":
			seen = &haveSR
			if v == "" {
				return nil, malformed("empty sr")
			}
			if _, err := url.PathUnescape(v); err != nil {
				return nil, malformed("sr is not valid percent-encoding")
			}
			t.Resource = v
		case "sig":
			seen = &haveSig
			// PathUnescape, not QueryUnescape: a '+' sent unencoded is a
			// base64 '+', never a space.
			u, err := url.PathUnescape(v)
			if err != nil {
				return nil, malformed("sig is not valid percent-encoding")
			}
			sig, err := base64.StdEncoding.DecodeString(u)
			if err != nil || len(sig) == 0 {
				return nil, malformed("sig is not base64")
			}
			t.Signature = sig
		case "se":
			seen = &haveSE
			n, err := parseExpiry(v)
			if err != nil {
				return nil, err
			}
			t.Expiry, t.RawExpiry = time.Unix(n, 0), v
		case "skn":
			seen = &haveSKN
			u, err := url.PathUnescape(v)
			if err != nil {
				return nil, malformed("skn is not valid percent-encoding")
			}
			t.KeyName = u
		default:
			return nil, malformed("unknown field %q", truncate(k))
		}
		if *seen {
			return nil, malformed("duplicate field %q", k)
		}
		*seen = true
	}
	switch {
	case !haveSR:
		return nil, malformed("sr is missing")
	case !haveSig:
		return nil, malformed("sig is missing")
	case !haveSE:
		return nil, malformed("se is missing")
	}
	return &t, nil
}

func truncate(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// parseExpiry accepts only decimal digits (no sign, no spaces), so the
// string that was signed is the number that is checked.
func parseExpiry(v string) (int64, error) {
	if v == "" || len(v) > 18 {
		return 0, malformed("se must be unix seconds")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, malformed("se must be unix seconds")
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, malformed("se must be unix seconds")
	}
	return n, nil
}

// DecodedResource returns sr percent-decoded, for comparison with the
// resource the caller expects.
func (t *Token) DecodedResource() (string, error) {
	r, err := url.PathUnescape(t.Resource)
	if err != nil {
		return "", malformed("sr is not valid percent-encoding")
	}
	return r, nil
}

// CheckExpiry returns ErrExpired when now is later than the expiry plus
// skew.
func (t *Token) CheckExpiry(now time.Time, skew time.Duration) error {
	if now.After(t.Expiry.Add(skew)) {
		return ErrExpired
	}
	return nil
}

// VerifySignature checks the HMAC alone, in constant time, and returns
// ErrSignature on mismatch. Use it to try several keys after one
// CheckExpiry.
func (t *Token) VerifySignature(key []byte) error {
	if !hmac.Equal(mac(key, t.Resource, t.RawExpiry), t.Signature) {
		return ErrSignature
	}
	return nil
}

// Verify checks the expiry (ErrExpired) and then the signature
// (ErrSignature). It does not check the resource; see the package
// security contract.
func (t *Token) Verify(key []byte, now time.Time, skew time.Duration) error {
	if err := t.CheckExpiry(now, skew); err != nil {
		return err
	}
	return t.VerifySignature(key)
}

func mac(key []byte, resource, expiry string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(resource))
	h.Write([]byte{'\n'})
	h.Write([]byte(expiry))
	return h.Sum(nil)
}

// Sign returns base64(HMAC-SHA256(key, resource + "\n" + expiry)), the sig
// value before URL encoding. resource is signed as given.
func Sign(key []byte, resource string, expiry int64) string {
	return base64.StdEncoding.EncodeToString(mac(key, resource, strconv.FormatInt(expiry, 10)))
}

// Build returns a complete token (the Authorization header value). resource
// is written and signed exactly as given, so pass it encoded if the
// receiver expects that; it must not contain '&'. keyName is omitted when
// empty.
func Build(key []byte, resource, keyName string, expiry time.Time) string {
	se := expiry.Unix()
	var b strings.Builder
	b.WriteString(Scheme)
	b.WriteString(" sr=")
	b.WriteString(resource)
	b.WriteString("&sig=")
	b.WriteString(url.QueryEscape(Sign(key, resource, se)))
	b.WriteString("&se=")
	b.WriteString(strconv.FormatInt(se, 10))
	if keyName != "" {
		b.WriteString("&skn=")
		// QueryEscape writes a space as '+', which Parse (like Azure) reads
		// as a literal '+'; %20 keeps odd names intact.
		b.WriteString(strings.ReplaceAll(url.QueryEscape(keyName), "+", "%20"))
	}
	return b.String()
}

// DeriveDeviceKey returns the key of a device in a symmetric-key enrollment
// group: HMAC-SHA256(groupKey, utf8(registrationID)). groupKey is the
// decoded group key.
func DeriveDeviceKey(groupKey []byte, registrationID string) []byte {
	h := hmac.New(sha256.New, groupKey)
	h.Write([]byte(registrationID))
	return h.Sum(nil)
}

// DeriveDeviceKeyBase64 is DeriveDeviceKey on base64 keys, as operators and
// device SDKs handle them. Errors wrap ErrMalformed.
func DeriveDeviceKeyBase64(groupKey, registrationID string) (string, error) {
	k, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil || len(k) == 0 {
		return "", malformed("group key is not base64")
	}
	return base64.StdEncoding.EncodeToString(DeriveDeviceKey(k, registrationID)), nil
}
