package dice

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// der builds a DER element.
func der(class, tag int, compound bool, content ...[]byte) []byte {
	b, err := asn1.Marshal(asn1.RawValue{Class: class, Tag: tag, IsCompound: compound, Bytes: bytes.Join(content, nil)})
	if err != nil {
		panic(err)
	}
	return b
}

func seq(content ...[]byte) []byte { return der(0, asn1.TagSequence, true, content...) }
func ctx(tag int, content []byte) []byte {
	return der(asn1.ClassContextSpecific, tag, false, content)
}

var sha256OID = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func fwidDER(digest []byte) []byte { return seq(mustMarshal(sha256OID), mustMarshal(digest)) }

func i(v int64) *int64 { return &v }

var digest = bytes.Repeat([]byte{0xab}, 32)

// fullTcbInfo has every field of the structure, hand-encoded.
var fullTcbInfo = seq(
	ctx(0, []byte("acme")),
	ctx(1, []byte("board")),
	ctx(2, []byte("1.2.3")),
	ctx(3, []byte{0x07}),
	ctx(4, []byte{0x01}),
	ctx(5, []byte{0x00}),
	der(asn1.ClassContextSpecific, 6, true, fwidDER(digest)),
	ctx(7, []byte{0x04, 0x10}), // 4 bits: debug (bit 3) set
	ctx(8, []byte{0xde, 0xad}),
	ctx(9, []byte{0x01}),
	ctx(10, []byte{0x04, 0xf0}),
	ctx(11, []byte{0x42}), // a field of a later version: kept, undecoded
)

func TestParseTcbInfo(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		want    *TcbInfo
		wantErr error
	}{
		{name: "every field", in: fullTcbInfo, want: &TcbInfo{
			Vendor: "acme", Model: "board", Version: "1.2.3", SVN: i(7), Layer: i(1), Index: i(0),
			FWIDs: []FWID{{HashAlg: sha256OID, Digest: digest}},
			Flags: asn1.BitString{Bytes: []byte{0x10}, BitLength: 4}, VendorInfo: []byte{0xde, 0xad}, Type: []byte{0x01},
			FlagsMask: asn1.BitString{Bytes: []byte{0xf0}, BitLength: 4},
			Extra:     []asn1.RawValue{{Class: 2, Tag: 11, Bytes: []byte{0x42}, FullBytes: ctx(11, []byte{0x42})}},
		}},
		{name: "layer 0 and svn 0 are present, not absent", in: seq(ctx(3, []byte{0}), ctx(4, []byte{0})), want: &TcbInfo{SVN: i(0), Layer: i(0)}},
		{name: "empty TcbInfo", in: seq(), want: &TcbInfo{}},
		{name: "legacy RIoT CompositeDeviceID", in: seq(mustMarshal(1), seq(), fwidDER(digest)), wantErr: ErrLegacyRIoT},
		{name: "RIoT-looking INTEGER after a field is malformed", in: seq(ctx(0, []byte("a")), mustMarshal(1)), wantErr: ErrMalformed},
		{name: "universal UTF8String first", in: seq(mustMarshal("acme")), wantErr: ErrMalformed},
		{name: "fields out of order", in: seq(ctx(4, []byte{1}), ctx(3, []byte{1})), wantErr: ErrMalformed},
		{name: "field repeated", in: seq(ctx(3, []byte{1}), ctx(3, []byte{2})), wantErr: ErrMalformed},
		{name: "application class", in: seq(der(asn1.ClassApplication, 0, false, []byte("a"))), wantErr: ErrMalformed},
		{name: "constructed svn", in: seq(der(asn1.ClassContextSpecific, 3, true, mustMarshal(1))), wantErr: ErrMalformed},
		{name: "primitive fwids", in: seq(ctx(6, fwidDER(digest))), wantErr: ErrMalformed},
		{name: "non-minimal integer", in: seq(ctx(3, []byte{0x00, 0x01})), wantErr: ErrMalformed},
		{name: "integer beyond int64", in: seq(ctx(3, bytes.Repeat([]byte{0x7f}, 9))), wantErr: ErrMalformed},
		{name: "empty integer", in: seq(ctx(3, nil)), wantErr: ErrMalformed},
		{name: "invalid UTF-8 vendor", in: seq(ctx(0, []byte{0xff, 0xfe})), wantErr: ErrMalformed},
		{name: "FWID with a third element", in: seq(der(asn1.ClassContextSpecific, 6, true, seq(mustMarshal(sha256OID), mustMarshal(digest), mustMarshal(1)))), wantErr: ErrMalformed},
		{name: "FWID digest not an OCTET STRING", in: seq(der(asn1.ClassContextSpecific, 6, true, seq(mustMarshal(sha256OID), mustMarshal(5)))), wantErr: ErrMalformed},
		{name: "bit string with set padding bits", in: seq(ctx(7, []byte{0x04, 0x11})), wantErr: ErrMalformed},
		{name: "trailing data", in: append(seq(), 0x00), wantErr: ErrMalformed},
		{name: "not a SEQUENCE", in: mustMarshal(5), wantErr: ErrMalformed},
		{name: "truncated", in: fullTcbInfo[:len(fullTcbInfo)-3], wantErr: ErrMalformed},
		{name: "empty input", in: nil, wantErr: ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTcbInfo(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || got != nil {
					t.Fatalf("got %+v, %v; want %v", got, err, tc.wantErr)
				}
				for _, other := range []error{ErrMalformed, ErrLegacyRIoT} {
					if other != tc.wantErr && errors.Is(err, other) {
						t.Fatalf("%v also wraps %v", err, other)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tc.want)
			}
			enc, err := got.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, tc.in) {
				t.Errorf("re-encoding differs:\n%x\n%x", enc, tc.in)
			}
		})
	}
	if got, _ := ParseTcbInfo(fullTcbInfo); !got.Flag(FlagDebug) || got.Flag(FlagNotSecure) || got.Flag(40) {
		t.Error("Flag reads the wrong bits")
	}
}

func TestParseCompositeDeviceID(t *testing.T) {
	spki, _ := hex.DecodeString("3059301306072a8648ce3d020106082a8648ce3d030107034200046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
	riot := seq(mustMarshal(1), spki, fwidDER(digest))
	c, err := ParseCompositeDeviceID(riot)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 1 || !bytes.Equal(c.DeviceID, spki) || !bytes.Equal(c.FWID.Digest, digest) {
		t.Fatalf("%+v", c)
	}
	if enc, err := c.Marshal(); err != nil || !bytes.Equal(enc, riot) {
		t.Fatalf("round trip: %v\n%x\n%x", err, enc, riot)
	}
	for name, in := range map[string][]byte{
		"not a key":      seq(mustMarshal(1), seq(), fwidDER(digest)),
		"missing fwid":   seq(mustMarshal(1), spki),
		"extra element":  seq(mustMarshal(1), spki, fwidDER(digest), mustMarshal(2)),
		"a TcbInfo":      fullTcbInfo,
		"version string": seq(mustMarshal("1"), spki, fwidDER(digest)),
	} {
		if _, err := ParseCompositeDeviceID(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseMultiTcbInfo(t *testing.T) {
	two := seq(seq(ctx(4, []byte{1})), seq(ctx(4, []byte{2})))
	got, err := ParseMultiTcbInfo(two)
	if err != nil || len(got) != 2 || *got[0].Layer != 1 || *got[1].Layer != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	if enc, err := MarshalMultiTcbInfo(got); err != nil || !bytes.Equal(enc, two) {
		t.Fatalf("round trip: %v", err)
	}
	many := make([][]byte, MaxTcbInfos+1)
	for k := range many {
		many[k] = seq()
	}
	for name, in := range map[string][]byte{
		"empty":                 seq(),
		"RIoT entry":            seq(seq(mustMarshal(1), seq(), fwidDER(digest))),
		"entry not a SEQUENCE":  seq(ctx(4, []byte{1})),
		"bad entry":             seq(seq(ctx(4, []byte{1}), ctx(4, []byte{1}))),
		"too many":              seq(many...),
		"trailing":              append(seq(seq()), 0),
		"a TcbInfo, not a list": fullTcbInfo,
	} {
		_, err := ParseMultiTcbInfo(in)
		if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrLegacyRIoT) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseUeid(t *testing.T) {
	u := []byte{1, 2, 3, 4, 5, 6, 7}
	in := seq(mustMarshal(u))
	got, err := ParseUeid(in)
	if err != nil || !bytes.Equal(got, u) {
		t.Fatalf("%x %v", got, err)
	}
	if enc, err := MarshalUeid(got); err != nil || !bytes.Equal(enc, in) {
		t.Fatalf("round trip: %v", err)
	}
	for name, in := range map[string][]byte{
		"empty ueid":   seq(mustMarshal([]byte{})),
		"too long":     seq(mustMarshal(make([]byte, MaxUeidLength+1))),
		"extra":        seq(mustMarshal(u), mustMarshal(1)),
		"none":         seq(),
		"not octets":   seq(mustMarshal(5)),
		"not sequence": mustMarshal(u),
	} {
		if _, err := ParseUeid(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
