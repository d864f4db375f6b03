package dice

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// The extension parsers read device input. The fuzz targets check that
// they never panic, that every error wraps exactly one sentinel, and the
// round-trip property: a value that parses re-encodes to DER that parses
// to an equal value and re-encodes to the same bytes. Seeds live in
// testdata/fuzz/<FuzzName>/ (from the testdata/dice vectors and the table
// tests).

func onlyOne(t *testing.T, err error, allowed ...error) {
	t.Helper()
	n := 0
	for _, s := range allowed {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %v wraps %d of the sentinels, want exactly 1", err, n)
	}
}

func FuzzParseTcbInfo(f *testing.F) {
	f.Add(fullTcbInfo)
	f.Add(seq())
	f.Add(seq(mustMarshal(1), seq(), fwidDER(digest)))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseTcbInfo(b)
		if err != nil {
			onlyOne(t, err, ErrMalformed, ErrLegacyRIoT)
			if errors.Is(err, ErrLegacyRIoT) {
				_, _ = ParseCompositeDeviceID(b) // must not panic either
			}
			return
		}
		enc, err := v.Marshal()
		if err != nil {
			t.Fatalf("re-encoding a parsed TcbInfo: %v", err)
		}
		again, err := ParseTcbInfo(enc)
		if err != nil {
			t.Fatalf("re-encoded TcbInfo does not parse: %v\n%x", err, enc)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip changed the value:\n%#v\n%#v", v, again)
		}
		if enc2, err := again.Marshal(); err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding is not stable (%v)", err)
		}
	})
}

func FuzzParseMultiTcbInfo(f *testing.F) {
	f.Add(seq(fullTcbInfo, seq(ctx(4, []byte{2}))))
	f.Add(seq())
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseMultiTcbInfo(b)
		if err != nil {
			onlyOne(t, err, ErrMalformed, ErrLegacyRIoT)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("a MultiTcbInfo error must be ErrMalformed: %v", err)
			}
			return
		}
		enc, err := MarshalMultiTcbInfo(v)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		again, err := ParseMultiTcbInfo(enc)
		if err != nil || !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip: %v\n%#v\n%#v", err, v, again)
		}
		if enc2, err := MarshalMultiTcbInfo(again); err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding is not stable (%v)", err)
		}
	})
}

func FuzzParseUeid(f *testing.F) {
	f.Add(seq(mustMarshal([]byte{1, 2, 3, 4, 5, 6, 7})))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseUeid(b)
		if err != nil {
			onlyOne(t, err, ErrMalformed)
			return
		}
		enc, err := MarshalUeid(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("a parsed UEID re-encodes differently: DER has one encoding\n%x\n%x", b, enc)
		}
	})
}
