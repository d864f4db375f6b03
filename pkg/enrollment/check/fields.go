package check

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// MaxIDLength is the longest registration ID, device ID or enrollment group
// ID that DPS accepts.
const MaxIDLength = 128

// Key sizes accepted for symmetric keys and shared access policy keys, in
// decoded bytes (DPS rule).
const (
	MinKeyBytes = 16
	MaxKeyBytes = 64
)

// Bounded refuses an empty v, or one longer than maxLen bytes.
func Bounded(field, v string, maxLen int) error {
	switch {
	case v == "":
		return Invalid(field, "is required")
	case len(v) > maxLen:
		return Invalid(field, "must be at most %d characters", maxLen)
	}
	return nil
}

// ID checks the DPS rule for registration IDs (and the IDs that follow
// it): 1 to 128 ASCII alphanumerics and ": . _ -", not starting or ending
// with one of the special characters.
func ID(field, id string) error {
	if err := Bounded(field, id, MaxIDLength); err != nil {
		return err
	}
	// By rune, not byte: the message names the character the caller
	// typed ('é', not the first byte of its UTF-8 'Ã') and its position
	// in characters. Invalid UTF-8 shows as U+FFFD.
	pos := 0
	for i, c := range id {
		pos++
		if isAlnum(c) {
			continue
		}
		if !isIDSpecial(c) {
			return Invalid(field, "character %q at position %d is not allowed (use letters, digits and \": . _ -\")", c, pos)
		}
		if i == 0 || i == len(id)-1 {
			return Invalid(field, "must not start or end with %q", c)
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isIDSpecial(c rune) bool { return c == ':' || c == '.' || c == '_' || c == '-' }

// HostName checks a DNS host name with an optional ":port", the form of
// linked hub names and of the hub references in enrollments.
func HostName(field, name string) error {
	if name == "" {
		return Invalid(field, "is required")
	}
	host := name
	if h, port, ok := strings.Cut(name, ":"); ok {
		host = h
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || strings.ContainsAny(port, "+-") {
			return Invalid(field, "port %q must be a number from 1 to 65535", port)
		}
	}
	if host == "" || len(host) > 253 {
		return Invalid(field, "must be a host name of 1 to 253 characters")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return Invalid(field, "%q is not a valid host name (each dot-separated label has 1 to 63 characters)", name)
		}
		for _, c := range label {
			if !isAlnum(c) && c != '-' {
				return Invalid(field, "%q is not a valid host name (letters, digits, '-' and '.' only)", name)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return Invalid(field, "%q is not a valid host name (a label may not start or end with '-')", name)
		}
	}
	return nil
}

// DecodeKey decodes a base64 symmetric key or policy key and checks its
// length (16 to 64 bytes). Only the canonical standard encoding is
// accepted, so a stored key has exactly one spelling.
func DecodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, Invalid("", "must be standard base64 (with padding)")
	}
	if len(b) < MinKeyBytes || len(b) > MaxKeyBytes {
		return nil, Invalid("", "must decode to %d to %d bytes, not %d", MinKeyBytes, MaxKeyBytes, len(b))
	}
	return b, nil
}

// Key checks an optional key: empty, or what DecodeKey accepts.
func Key(field, s string) error {
	if s == "" {
		return nil // generated on create (GenerateMissingKeys)
	}
	_, err := DecodeKey(s)
	return Prefixed(field, err)
}

// WebhookURL checks a custom allocation webhook: an absolute http or
// https URL with a valid host.
func WebhookURL(field, s string) error {
	if s == "" {
		return Invalid(field, "is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return Invalid(field, "is not a URL")
	}
	if !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https") {
		return Invalid(field, "must be an absolute http or https URL")
	}
	if u.Host == "" || u.Opaque != "" {
		return Invalid(field, "must be an absolute http or https URL with a host")
	}
	if u.Hostname() == "" {
		return Invalid(field, "must name a host")
	}
	return nil
}

// NormalizeRaw makes a free-form JSON value canonical: JSON null becomes
// absent, and the bytes are compacted and HTML-escaped exactly as
// encoding/json would re-encode them, so a stored value survives
// encode/decode byte for byte.
func NormalizeRaw(m *json.RawMessage) {
	if *m == nil {
		return
	}
	t := bytes.TrimSpace(*m)
	if len(t) == 0 || string(t) == "null" {
		*m = nil
		return
	}
	var c, h bytes.Buffer
	if err := json.Compact(&c, t); err != nil {
		return // not reachable for decoded input; validation reports it
	}
	json.HTMLEscape(&h, c.Bytes())
	*m = h.Bytes()
}

// Object checks an optional free-form value: absent, or a JSON object.
func Object(field string, m json.RawMessage) error {
	if m == nil {
		return nil
	}
	t := bytes.TrimSpace(m)
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return Invalid(field, "must be a JSON object")
	}
	return nil
}

// Label checks a free-form label: at most maxLen bytes, no control
// characters.
func Label(field, v string, maxLen int) error {
	if len(v) > maxLen {
		return Invalid(field, "must be at most %d characters", maxLen)
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return Invalid(field, "must not contain control characters")
		}
	}
	return nil
}

// MaxSiteNameLength is the longest site name.
const MaxSiteNameLength = 63

// SiteName checks a site name: 1 to 63 lower-case ASCII letters, digits
// and hyphens, not starting or ending with a hyphen.
func SiteName(field, name string) error {
	if err := Bounded(field, name, MaxSiteNameLength); err != nil {
		return err
	}
	for i, c := range name {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return Invalid(field, "character %q at position %d is not allowed (use lower-case letters, digits and inner hyphens)", c, i+1)
		}
	}
	return nil
}

// MaxPolicyNameLength is the longest shared access policy name.
const MaxPolicyNameLength = 64

// PolicyName checks a shared access policy name (field keyName): 1 to 64
// ASCII alphanumerics and "-_.".
func PolicyName(name string) error {
	if err := Bounded("keyName", name, MaxPolicyNameLength); err != nil {
		return err
	}
	pos := 0 // in characters, as ID
	for _, c := range name {
		pos++
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return Invalid("keyName", "character %q at position %d is not allowed (use letters, digits and \"-_.\")", c, pos)
		}
	}
	return nil
}
