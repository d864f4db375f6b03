package dice

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// Extensions are the DICE extensions of one certificate.
type Extensions struct {
	// TcbInfo is the tcg-dice-TcbInfo extension, nil when absent or when
	// the OID carries a legacy RIoT CompositeDeviceID (then Legacy is set).
	TcbInfo *TcbInfo
	Legacy  *CompositeDeviceID
	// MultiTcbInfo is the tcg-dice-MultiTcbInfo extension.
	MultiTcbInfo []TcbInfo
	// UEID is the tcg-dice-Ueid extension.
	UEID []byte
}

// Any reports whether the certificate carries any DICE extension.
func (e *Extensions) Any() bool {
	return e.TcbInfo != nil || e.Legacy != nil || len(e.MultiTcbInfo) > 0 || e.UEID != nil
}

// TcbInfos returns the certificate's TcbInfo entries: the TcbInfo, then
// the MultiTcbInfo entries in order.
func (e *Extensions) TcbInfos() []TcbInfo {
	var out []TcbInfo
	if e.TcbInfo != nil {
		out = append(out, *e.TcbInfo)
	}
	return append(out, e.MultiTcbInfo...)
}

// ParseExtensions parses the DICE extensions of c. A DICE extension that
// does not parse is an error wrapping ErrMalformed, whether critical or
// not.
func ParseExtensions(c *x509.Certificate) (*Extensions, error) {
	out := &Extensions{}
	for _, ext := range c.Extensions {
		var err error
		switch {
		case ext.Id.Equal(OIDTcbInfo):
			out.TcbInfo, err = ParseTcbInfo(ext.Value)
			if errors.Is(err, ErrLegacyRIoT) {
				out.Legacy, err = ParseCompositeDeviceID(ext.Value)
			}
		case ext.Id.Equal(OIDMultiTcbInfo):
			out.MultiTcbInfo, err = ParseMultiTcbInfo(ext.Value)
		case ext.Id.Equal(OIDUeid):
			out.UEID, err = ParseUeid(ext.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// understood reports whether zdps understands the extension oid of c: it
// is one of the three DICE extensions and its value parses.
func understood(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oid) {
			continue
		}
		var err error
		switch {
		case oid.Equal(OIDTcbInfo):
			_, err = ParseTcbInfo(ext.Value)
			if errors.Is(err, ErrLegacyRIoT) {
				_, err = ParseCompositeDeviceID(ext.Value)
			}
		case oid.Equal(OIDMultiTcbInfo):
			_, err = ParseMultiTcbInfo(ext.Value)
		case oid.Equal(OIDUeid):
			_, err = ParseUeid(ext.Value)
		default:
			return false
		}
		return err == nil
	}
	return false
}

// AcceptUnderstood returns c when none of its unhandled critical
// extensions is a DICE extension that parses, else a shallow copy of c
// whose UnhandledCriticalExtensions lacks those. Every other unhandled
// critical extension stays, so crypto/x509's Verify still refuses it; a
// critical DICE extension that does not parse stays too. c itself is
// never modified (it may be shared, for example with a TLS connection
// state).
func AcceptUnderstood(c *x509.Certificate) *x509.Certificate {
	if c == nil || len(c.UnhandledCriticalExtensions) == 0 {
		return c
	}
	keep := slices.DeleteFunc(slices.Clone(c.UnhandledCriticalExtensions), func(oid asn1.ObjectIdentifier) bool {
		return understood(c, oid)
	})
	if len(keep) == len(c.UnhandledCriticalExtensions) {
		return c
	}
	cp := *c
	cp.UnhandledCriticalExtensions = keep
	return &cp
}

// KeyID is how zdps names a DeviceID key: "sha256:" and the lower-case
// hex SHA-256 of the DER SubjectPublicKeyInfo.
func KeyID(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// State reads the DICE evidence of a verified certificate path (leaf
// first, the anchor last) into the form zdps records. It returns nil, nil
// when no certificate of the path carries a DICE extension (a plain X.509
// device), and an error wrapping ErrMalformed when a DICE extension of the
// path does not parse.
//
// The DeviceID certificate, whose key is the device's stable identity,
// is the highest certificate of the path (the anchor included) other than
// the leaf that carries a DICE extension; when none above the leaf does,
// the leaf's issuer; when the path is the leaf alone, the leaf. The
// measurements are every TcbInfo and MultiTcbInfo entry of the path, leaf
// first.
//
// Security contract: pass only a path that crypto/x509 verified to the
// certificate the matching enrollment names; nothing here checks a
// signature.
func State(path []*x509.Certificate) (*firmware.DICEState, error) {
	if len(path) == 0 {
		return nil, nil
	}
	st := &firmware.DICEState{}
	anyExt := false
	deviceID := -1
	for i, c := range path {
		ext, err := ParseExtensions(c)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain (%s): %w", i, firmware.Quote(c.Subject.CommonName), err)
		}
		if !ext.Any() {
			continue
		}
		anyExt = true
		if i > 0 {
			deviceID = i
		}
		if ext.Legacy != nil {
			st.LegacyRIoT = true
		}
		if ext.UEID != nil && st.UEID == "" {
			st.UEID = hex.EncodeToString(ext.UEID)
		}
		for _, t := range ext.TcbInfos() {
			st.Measurements = append(st.Measurements, Measurement(&t))
		}
	}
	if !anyExt {
		return nil, nil
	}
	switch {
	case deviceID >= 0:
	case len(path) > 1:
		deviceID = 1
	default:
		deviceID = 0
	}
	st.DeviceIDKey = KeyID(path[deviceID].RawSubjectPublicKeyInfo)
	return st, nil
}

// Measurement converts a TcbInfo into the recorded form.
func Measurement(t *TcbInfo) firmware.Measurement {
	m := firmware.Measurement{
		Layer: clone(t.Layer), Index: clone(t.Index), SVN: clone(t.SVN),
		Vendor: t.Vendor, Model: t.Model, Version: t.Version,
	}
	for _, f := range t.FWIDs {
		m.FWIDs = append(m.FWIDs, firmware.Digest{HashAlg: firmware.HashAlgName(f.HashAlg.String()), Digest: hex.EncodeToString(f.Digest)})
	}
	for bit, name := range FlagNames {
		if t.Flag(bit) {
			m.Flags = append(m.Flags, name)
		}
	}
	return m
}

func clone(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
