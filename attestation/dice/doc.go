// Package dice reads the TCG DICE certificate extensions of a device's
// X.509 chain (docs/protocol.md#dice-measurements) and evaluates an enrollment's firmware
// policy (firmware.Policy) against them.
//
//   - ParseTcbInfo, ParseMultiTcbInfo, ParseUeid: the values of the
//     DiceTcbInfo (2.23.133.5.4.1), DiceMultiTcbInfo (2.23.133.5.4.5) and
//     DiceUeid (2.23.133.5.4.4) extensions, with encoders for each.
//     ParseCompositeDeviceID reads the legacy Microsoft RIoT structure that
//     reuses 2.23.133.5.4.1.
//   - AcceptUnderstood: a certificate whose critical DICE extensions parse
//     no longer counts them as unhandled, so crypto/x509's Verify accepts
//     them; attestation/x509 applies it to every certificate it verifies.
//   - State: the DeviceID key and the measurements of a verified path, in
//     the form the registration record keeps (firmware.DICEState).
//   - Evaluate: the firmware policy decision, with a message naming the
//     layer and the measurement.
//
// # Security contract
//
// The parsers take device input. They never panic, bound their work (at
// most MaxTcbInfos entries, MaxFWIDs digests, 32 fields per TcbInfo,
// MaxUeidLength bytes of UEID) and accept only DER of the exact structure:
// every DiceTcbInfo field is OPTIONAL and IMPLICIT-tagged, so each element
// is checked for class, tag, the constructed bit, order and repetition
// before its contents are decoded (encoding/asn1 alone would ignore
// trailing elements and cannot tell absent from zero). A value whose first
// element is a universal INTEGER is a RIoT CompositeDeviceID: ParseTcbInfo
// refuses it with ErrLegacyRIoT and never decodes it as an empty TcbInfo.
// Fields of later versions of DiceTcbInfo (context tags above [10]) are
// kept undecoded in TcbInfo.Extra. Every parser error wraps exactly one of
// ErrMalformed and ErrLegacyRIoT; messages may quote positions and tags
// but never the raw bytes.
//
// AcceptUnderstood removes an OID from UnhandledCriticalExtensions only
// when it is one of the three DICE extensions and its value parses (a
// RIoT CompositeDeviceID parses too); any other critical extension, and a
// critical DICE extension that does not parse, still fails verification.
// It never modifies the certificate it is given.
//
// What the caller must still do: verify the chain (State and Evaluate
// check no signature), pass State only the verified path, never other
// certificates the device presented, and apply Evaluate's verdict. The
// DeviceID is identified by position (see State), not by a signature of
// its own; it is authentic because the path verified.
package dice
