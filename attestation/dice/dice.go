package dice

import (
	"encoding/asn1"
	"errors"
)

// Object identifiers of the TCG DICE certificate extensions (TCG DICE
// Attestation Architecture; docs/protocol.md#dice-measurements).
var (
	// OIDTcbInfo is tcg-dice-TcbInfo. Legacy Microsoft RIoT certificates
	// use the same OID for a CompositeDeviceID.
	OIDTcbInfo = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 1}
	// OIDUeid is tcg-dice-Ueid.
	OIDUeid = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 4}
	// OIDMultiTcbInfo is tcg-dice-MultiTcbInfo.
	OIDMultiTcbInfo = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 5}
)

// Sentinel errors. Every error of a parser wraps exactly one of them.
var (
	// ErrMalformed: the extension value is not valid DER of the expected
	// structure (wrong tags, fields out of order or repeated, trailing
	// data, an integer out of range, invalid UTF-8).
	ErrMalformed = errors.New("dice: malformed extension")
	// ErrLegacyRIoT: the value of a tcg-dice-TcbInfo extension is a legacy
	// Microsoft RIoT CompositeDeviceID (its first element is a universal
	// INTEGER), not a DiceTcbInfo. ParseCompositeDeviceID reads it.
	ErrLegacyRIoT = errors.New("dice: legacy RIoT CompositeDeviceID, not a TcbInfo")
)

// OperationalFlags bits of TcbInfo.Flags and TcbInfo.FlagsMask.
const (
	FlagNotConfigured = 0
	FlagNotSecure     = 1
	FlagRecovery      = 2
	FlagDebug         = 3
)

// FlagNames are the names of the OperationalFlags bits, by bit number, as
// zdps spells them in firmware policies and registration records.
var FlagNames = [...]string{"notConfigured", "notSecure", "recovery", "debug"}

// FWID is one firmware measurement: a digest with its hash algorithm.
//
//	FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }
type FWID struct {
	HashAlg asn1.ObjectIdentifier
	Digest  []byte
}

// TcbInfo is a DiceTcbInfo: the measurements of one layer (or one
// component, by Index) of the device's trusted computing base.
//
// Every field is OPTIONAL. Absent strings are "", absent integers nil,
// absent octet strings and bit strings nil (a present but empty one is a
// non-nil empty slice). Fields of later versions of the structure (context
// tags above 10) are kept in Extra, in order, undecoded.
type TcbInfo struct {
	Vendor     string         // [0] UTF8String
	Model      string         // [1] UTF8String
	Version    string         // [2] UTF8String
	SVN        *int64         // [3] INTEGER
	Layer      *int64         // [4] INTEGER
	Index      *int64         // [5] INTEGER
	FWIDs      []FWID         // [6] SEQUENCE OF FWID
	Flags      asn1.BitString // [7] OperationalFlags
	VendorInfo []byte         // [8] OCTET STRING
	Type       []byte         // [9] OCTET STRING
	FlagsMask  asn1.BitString // [10] OperationalFlagsMask
	Extra      []asn1.RawValue
}

// Flag reports whether OperationalFlags bit (FlagDebug, ...) is set.
func (t *TcbInfo) Flag(bit int) bool { return t.Flags.At(bit) == 1 }

// CompositeDeviceID is the legacy Microsoft RIoT structure that reuses
// OIDTcbInfo:
//
//	CompositeDeviceID ::= SEQUENCE {
//	    version  INTEGER,
//	    deviceID SubjectPublicKeyInfo,
//	    fwid     FWID }
type CompositeDeviceID struct {
	Version int64
	// DeviceID is the DER SubjectPublicKeyInfo of the DeviceID key.
	DeviceID []byte
	FWID     FWID
}
