package dice

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxTcbInfos bounds the entries of one DiceMultiTcbInfo, and MaxFWIDs the
// digests of one TcbInfo, so the work spent on one certificate is bounded
// whatever the device sends.
const (
	MaxTcbInfos = 64
	MaxFWIDs    = 16
)

// MaxUeidLength is the longest UEID accepted (EAT allows 7 to 33 bytes;
// zdps leaves room for other profiles).
const MaxUeidLength = 64

// The decoders below walk the DER with asn1.RawValue element by element
// instead of asn1.Unmarshal into tagged structs: encoding/asn1 silently
// ignores trailing elements of a SEQUENCE and cannot tell "absent" from
// "zero" for OPTIONAL integers, and every DiceTcbInfo field is both
// OPTIONAL and IMPLICIT-tagged. Each element is checked for class, tag,
// the constructed bit, order and repetition before its contents are
// decoded; the contents of a primitive are decoded by encoding/asn1 with
// the implicit tag, which enforces DER (minimal integers, UTF-8, bit
// string padding).

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// one reads exactly one DER element from b: trailing bytes are an error.
func one(b []byte, what string) (asn1.RawValue, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil {
		return v, malformed("%s: %v", what, err)
	}
	if len(rest) > 0 {
		return v, malformed("%s: %d bytes of trailing data", what, len(rest))
	}
	return v, nil
}

// elements splits the contents of a constructed value into its elements.
func elements(b []byte, what string, limit int) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		if len(out) == limit {
			return nil, malformed("%s: more than %d elements", what, limit)
		}
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, malformed("%s: element %d: %v", what, len(out), err)
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

func isSequence(v asn1.RawValue) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSequence && v.IsCompound
}

// sequence reads one universal SEQUENCE from b and returns its elements.
func sequence(b []byte, what string, limit int) ([]asn1.RawValue, error) {
	v, err := one(b, what)
	if err != nil {
		return nil, err
	}
	if !isSequence(v) {
		return nil, malformed("%s: not a SEQUENCE (class %d, tag %d)", what, v.Class, v.Tag)
	}
	return elements(v.Bytes, what, limit)
}

// maxTcbInfoElements bounds the elements of one TcbInfo: eleven known
// fields and room for later ones.
const maxTcbInfoElements = 32

// ParseTcbInfo parses the value of a tcg-dice-TcbInfo extension. It returns
// an error wrapping ErrLegacyRIoT when the value is a legacy RIoT
// CompositeDeviceID (first element a universal INTEGER) and never decodes
// that as an empty TcbInfo; any other deviation wraps ErrMalformed.
func ParseTcbInfo(der []byte) (*TcbInfo, error) {
	v, err := one(der, "TcbInfo")
	if err != nil {
		return nil, err
	}
	if !isSequence(v) {
		return nil, malformed("TcbInfo: not a SEQUENCE (class %d, tag %d)", v.Class, v.Tag)
	}
	return parseTcbInfoBody(v.Bytes, "TcbInfo")
}

func parseTcbInfoBody(b []byte, what string) (*TcbInfo, error) {
	els, err := elements(b, what, maxTcbInfoElements)
	if err != nil {
		return nil, err
	}
	if len(els) > 0 && els[0].Class == asn1.ClassUniversal && els[0].Tag == asn1.TagInteger && !els[0].IsCompound {
		return nil, fmt.Errorf("%w (%s starts with a universal INTEGER)", ErrLegacyRIoT, what)
	}
	t := &TcbInfo{}
	last := -1
	for i, e := range els {
		if e.Class != asn1.ClassContextSpecific {
			return nil, malformed("%s: element %d has class %d tag %d, every field is context-tagged", what, i, e.Class, e.Tag)
		}
		if e.Tag <= last {
			return nil, malformed("%s: field [%d] after [%d]: fields must appear once each, in order", what, e.Tag, last)
		}
		last = e.Tag
		if err := t.setField(e); err != nil {
			return nil, fmt.Errorf("%s: field [%d]: %w", what, e.Tag, err)
		}
	}
	return t, nil
}

// implicit decodes the contents of a primitive IMPLICIT [tag] element
// into v with encoding/asn1 (which checks DER for the underlying type).
func implicit(e asn1.RawValue, v any, params string) error {
	if e.IsCompound {
		return malformed("constructed, a primitive value is expected")
	}
	rest, err := asn1.UnmarshalWithParams(e.FullBytes, v, fmt.Sprintf("tag:%d%s", e.Tag, params))
	if err != nil {
		return malformed("%v", err)
	}
	if len(rest) > 0 {
		return malformed("trailing data")
	}
	return nil
}

func (t *TcbInfo) setField(e asn1.RawValue) error {
	switch e.Tag {
	case 0, 1, 2:
		var s string
		if err := implicit(e, &s, ",utf8"); err != nil {
			return err
		}
		if !utf8.ValidString(s) {
			return malformed("invalid UTF-8")
		}
		*[]*string{&t.Vendor, &t.Model, &t.Version}[e.Tag] = s
	case 3, 4, 5:
		var n int64
		if err := implicit(e, &n, ""); err != nil {
			return err
		}
		*[]**int64{&t.SVN, &t.Layer, &t.Index}[e.Tag-3] = &n
	case 6:
		if !e.IsCompound {
			return malformed("fwids must be constructed")
		}
		fw, err := parseFWIDs(e.Bytes)
		if err != nil {
			return err
		}
		t.FWIDs = fw
	case 7, 10:
		var bs asn1.BitString
		if err := implicit(e, &bs, ""); err != nil {
			return err
		}
		if bs.Bytes == nil {
			bs.Bytes = []byte{}
		}
		if e.Tag == 7 {
			t.Flags = bs
		} else {
			t.FlagsMask = bs
		}
	case 8, 9:
		var o []byte
		if err := implicit(e, &o, ""); err != nil {
			return err
		}
		if o == nil {
			o = []byte{}
		}
		if e.Tag == 8 {
			t.VendorInfo = o
		} else {
			t.Type = o
		}
	default:
		t.Extra = append(t.Extra, e)
	}
	return nil
}

func parseFWIDs(b []byte) ([]FWID, error) {
	els, err := elements(b, "fwids", MaxFWIDs)
	if err != nil {
		return nil, err
	}
	out := make([]FWID, 0, len(els))
	for i, e := range els {
		f, err := parseFWID(e)
		if err != nil {
			return nil, fmt.Errorf("fwid %d: %w", i, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFWID(e asn1.RawValue) (FWID, error) {
	if !isSequence(e) {
		return FWID{}, malformed("not a SEQUENCE")
	}
	els, err := elements(e.Bytes, "FWID", 3)
	if err != nil {
		return FWID{}, err
	}
	if len(els) != 2 {
		return FWID{}, malformed("%d elements, a FWID has hashAlg and digest", len(els))
	}
	var f FWID
	if rest, err := asn1.Unmarshal(els[0].FullBytes, &f.HashAlg); err != nil || len(rest) > 0 {
		return FWID{}, malformed("hashAlg is not an OBJECT IDENTIFIER")
	}
	if els[1].Class != asn1.ClassUniversal || els[1].Tag != asn1.TagOctetString || els[1].IsCompound {
		return FWID{}, malformed("digest is not an OCTET STRING")
	}
	f.Digest = append([]byte{}, els[1].Bytes...)
	return f, nil
}

// ParseMultiTcbInfo parses the value of a tcg-dice-MultiTcbInfo extension:
// a SEQUENCE of 1 to MaxTcbInfos DiceTcbInfo. A legacy RIoT
// CompositeDeviceID has no place in it and is malformed there.
func ParseMultiTcbInfo(der []byte) ([]TcbInfo, error) {
	els, err := sequence(der, "MultiTcbInfo", MaxTcbInfos)
	if err != nil {
		return nil, err
	}
	if len(els) == 0 {
		return nil, malformed("MultiTcbInfo is empty (SIZE (1..MAX))")
	}
	out := make([]TcbInfo, 0, len(els))
	for i, e := range els {
		what := fmt.Sprintf("MultiTcbInfo entry %d", i)
		if !isSequence(e) {
			return nil, malformed("%s: not a SEQUENCE", what)
		}
		t, err := parseTcbInfoBody(e.Bytes, what)
		if errors.Is(err, ErrLegacyRIoT) {
			return nil, malformed("%s: a legacy RIoT CompositeDeviceID has no place in a MultiTcbInfo", what)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, nil
}

// ParseUeid parses the value of a tcg-dice-Ueid extension,
// SEQUENCE { ueid OCTET STRING }, and returns the UEID (1 to
// MaxUeidLength bytes).
func ParseUeid(der []byte) ([]byte, error) {
	els, err := sequence(der, "Ueid", 2)
	if err != nil {
		return nil, err
	}
	if len(els) != 1 {
		return nil, malformed("Ueid has %d elements, want 1", len(els))
	}
	e := els[0]
	if e.Class != asn1.ClassUniversal || e.Tag != asn1.TagOctetString || e.IsCompound {
		return nil, malformed("ueid is not an OCTET STRING")
	}
	if len(e.Bytes) == 0 || len(e.Bytes) > MaxUeidLength {
		return nil, malformed("ueid has %d bytes, want 1 to %d", len(e.Bytes), MaxUeidLength)
	}
	return append([]byte{}, e.Bytes...), nil
}

// ParseCompositeDeviceID parses a legacy RIoT CompositeDeviceID (the value
// of OIDTcbInfo in RIoT certificates). The deviceID must be a public key
// crypto/x509 can parse.
func ParseCompositeDeviceID(der []byte) (*CompositeDeviceID, error) {
	els, err := sequence(der, "CompositeDeviceID", 4)
	if err != nil {
		return nil, err
	}
	if len(els) != 3 {
		return nil, malformed("CompositeDeviceID has %d elements, want 3", len(els))
	}
	c := &CompositeDeviceID{}
	if rest, err := asn1.Unmarshal(els[0].FullBytes, &c.Version); err != nil || len(rest) > 0 {
		return nil, malformed("CompositeDeviceID version is not an INTEGER")
	}
	if !isSequence(els[1]) {
		return nil, malformed("CompositeDeviceID deviceID is not a SubjectPublicKeyInfo")
	}
	if _, err := x509.ParsePKIXPublicKey(els[1].FullBytes); err != nil {
		return nil, malformed("CompositeDeviceID deviceID: %v", err)
	}
	c.DeviceID = append([]byte{}, els[1].FullBytes...)
	if c.FWID, err = parseFWID(els[2]); err != nil {
		return nil, fmt.Errorf("CompositeDeviceID fwid: %w", err)
	}
	return c, nil
}

// Marshal encodes t as DER, each present field with its IMPLICIT tag in
// order; ParseTcbInfo(Marshal(t)) equals t for every t a parser returned.
func (t *TcbInfo) Marshal() ([]byte, error) {
	body, err := t.marshalBody()
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}

func (t *TcbInfo) marshalBody() ([]byte, error) {
	var out []byte
	add := func(v any, params string) error {
		b, err := asn1.MarshalWithParams(v, params)
		if err != nil {
			return err
		}
		out = append(out, b...)
		return nil
	}
	for i, s := range []string{t.Vendor, t.Model, t.Version} {
		if s == "" {
			continue
		}
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("dice: field [%d] is not valid UTF-8", i)
		}
		if err := add(s, fmt.Sprintf("tag:%d,utf8", i)); err != nil {
			return nil, err
		}
	}
	for i, n := range []*int64{t.SVN, t.Layer, t.Index} {
		if n != nil {
			if err := add(*n, fmt.Sprintf("tag:%d", i+3)); err != nil {
				return nil, err
			}
		}
	}
	if t.FWIDs != nil {
		if err := add(t.FWIDs, "tag:6"); err != nil {
			return nil, err
		}
	}
	if t.Flags.Bytes != nil {
		if err := add(t.Flags, "tag:7"); err != nil {
			return nil, err
		}
	}
	for i, o := range [][]byte{t.VendorInfo, t.Type} {
		if o != nil {
			if err := add(o, fmt.Sprintf("tag:%d", i+8)); err != nil {
				return nil, err
			}
		}
	}
	if t.FlagsMask.Bytes != nil {
		if err := add(t.FlagsMask, "tag:10"); err != nil {
			return nil, err
		}
	}
	for _, e := range t.Extra {
		if e.Class != asn1.ClassContextSpecific || e.Tag <= 10 || len(e.FullBytes) == 0 {
			return nil, fmt.Errorf("dice: Extra holds only context-tagged fields above [10]")
		}
		out = append(out, e.FullBytes...)
	}
	return out, nil
}

// MarshalMultiTcbInfo encodes a DiceMultiTcbInfo.
func MarshalMultiTcbInfo(ts []TcbInfo) ([]byte, error) {
	var body []byte
	for i := range ts {
		b, err := ts[i].Marshal()
		if err != nil {
			return nil, err
		}
		body = append(body, b...)
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}

// MarshalUeid encodes a DiceUeid.
func MarshalUeid(ueid []byte) ([]byte, error) {
	return asn1.Marshal(struct{ Ueid []byte }{ueid})
}

// Marshal encodes the legacy RIoT structure.
func (c *CompositeDeviceID) Marshal() ([]byte, error) {
	return asn1.Marshal(struct {
		Version  int64
		DeviceID asn1.RawValue
		FWID     FWID
	}{c.Version, asn1.RawValue{FullBytes: c.DeviceID}, c.FWID})
}
