package firmware

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Policy is a zdps extension of individual enrollments and
// enrollment groups (the field "firmwarePolicy"; Azure tools ignore it and
// Azure DPS has no equivalent): what firmware a device registering with a
// TCG DICE certificate chain (X.509 attestation) must run, as stated by the
// DiceTcbInfo and DiceMultiTcbInfo extensions of its verified chain
// (docs/protocol.md#dice-measurements).
//
// A policy that is present requires at least one TcbInfo in the chain
// unless AllowMissingTcbInfo is set. Then every TcbInfo must match Vendor
// and Model (when set; a layer's own vendor and model replace them for
// that layer) and have none of ForbiddenFlags set, and for each entry of
// Layers, the chain must carry a TcbInfo for that layer, and every TcbInfo
// for that layer must satisfy it: an SVN of at least MinSVN, and one of its
// FWIDs among AllowedFWIDs. A registration that violates the policy ends
// with status failed and a message naming the layer and the measurement.
type Policy struct {
	// AllowMissingTcbInfo admits chains without any TcbInfo (plain X.509
	// devices during a migration); the other rules still apply to chains
	// that carry one.
	AllowMissingTcbInfo bool `json:"allowMissingTcbInfo,omitempty"`
	// Vendor and Model every TcbInfo must state, exactly (case-sensitive).
	Vendor string `json:"vendor,omitempty"`
	Model  string `json:"model,omitempty"`
	// ForbiddenFlags are OperationalFlags no TcbInfo may have set:
	// notConfigured, notSecure, recovery, debug.
	ForbiddenFlags []string `json:"forbiddenFlags,omitempty"`
	// Layers are the per-layer rules, at most one per layer, in any order.
	Layers []LayerPolicy `json:"layers,omitempty"`
}

// LayerPolicy is the rule for the TcbInfo entries whose layer
// field is Layer.
type LayerPolicy struct {
	Layer int64 `json:"layer"`
	// Vendor and Model, when set, replace the policy's for this layer.
	Vendor string `json:"vendor,omitempty"`
	Model  string `json:"model,omitempty"`
	// MinSVN is the lowest security version number accepted (rollback
	// protection); nil means any (and no svn is needed).
	MinSVN *int64 `json:"minSvn,omitempty"`
	// AllowedFWIDs lists the firmware digests accepted for the layer; a
	// rollout lists the old and the new firmware at once. Empty means any.
	AllowedFWIDs []Digest `json:"allowedFwids,omitempty"`
}

// Digest is one FWID: a hash algorithm and a digest.
type Digest struct {
	// HashAlg is sha256, sha384, sha512, sha3-256, sha3-384 or sha3-512,
	// or the dotted object identifier of another algorithm; validation
	// turns a known OID into its name.
	HashAlg string `json:"hashAlg"`
	// Digest is lower-case hexadecimal (validation lower-cases it).
	Digest string `json:"digest"`
}

// String is "<hashAlg>:<hex digest>".
func (d Digest) String() string { return d.HashAlg + ":" + d.Digest }

// DICEState is what zdps keeps in a registration record about a device that
// registered with a DICE chain: its stable identity and the measurements
// of its last successful registration.
type DICEState struct {
	// DeviceIDKey identifies the DeviceID key, which survives firmware
	// updates: "sha256:" and the lower-case hex SHA-256 of the DeviceID
	// certificate's DER SubjectPublicKeyInfo.
	DeviceIDKey string `json:"deviceIdKey"`
	// UEID of the device (lower-case hex), when the chain states one.
	UEID string `json:"ueid,omitempty"`
	// Measurements are the TcbInfo entries of the verified chain, leaf
	// certificate first, MultiTcbInfo entries in their order.
	Measurements []Measurement `json:"measurements,omitempty"`
	// LegacyRIoT is set when the chain carries a legacy Microsoft RIoT
	// CompositeDeviceID (which is not a TcbInfo).
	LegacyRIoT bool `json:"legacyRIoT,omitempty"`
}

// Measurement is one TcbInfo as zdps records it (vendorInfo and
// type are not kept).
type Measurement struct {
	Layer   *int64   `json:"layer,omitempty"`
	Index   *int64   `json:"index,omitempty"`
	Vendor  string   `json:"vendor,omitempty"`
	Model   string   `json:"model,omitempty"`
	Version string   `json:"version,omitempty"`
	SVN     *int64   `json:"svn,omitempty"`
	FWIDs   []Digest `json:"fwids,omitempty"`
	Flags   []string `json:"flags,omitempty"`
}

// Equal reports whether two states record the same identity and
// measurements.
func (s *DICEState) Equal(o *DICEState) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.DeviceIDKey == o.DeviceIDKey && s.UEID == o.UEID && s.LegacyRIoT == o.LegacyRIoT &&
		slices.EqualFunc(s.Measurements, o.Measurements, Measurement.equal)
}

func (m Measurement) equal(o Measurement) bool {
	eq := func(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return eq(m.Layer, o.Layer) && eq(m.Index, o.Index) && eq(m.SVN, o.SVN) &&
		m.Vendor == o.Vendor && m.Model == o.Model && m.Version == o.Version &&
		slices.Equal(m.FWIDs, o.FWIDs) && slices.Equal(m.Flags, o.Flags)
}

// Summary is a one-line, log-safe rendering of the measurements:
// "layer 1 svn 3 sha256:ab12…; layer 0 …", or "none". Device-supplied
// strings are quoted and shortened.
func (s *DICEState) Summary() string {
	if s == nil || len(s.Measurements) == 0 {
		if s != nil && s.LegacyRIoT {
			return "legacy RIoT (no TcbInfo)"
		}
		return "none"
	}
	parts := make([]string, 0, len(s.Measurements))
	for _, m := range s.Measurements {
		parts = append(parts, m.Describe())
	}
	return strings.Join(parts, "; ")
}

// Describe renders one measurement for messages and logs.
func (m Measurement) Describe() string {
	var b strings.Builder
	b.WriteString("layer ")
	b.WriteString(optInt(m.Layer))
	if m.Index != nil {
		b.WriteString(" index " + strconv.FormatInt(*m.Index, 10))
	}
	if m.Vendor != "" {
		b.WriteString(" vendor " + Quote(m.Vendor))
	}
	if m.Model != "" {
		b.WriteString(" model " + Quote(m.Model))
	}
	if m.Version != "" {
		b.WriteString(" version " + Quote(m.Version))
	}
	if m.SVN != nil {
		b.WriteString(" svn " + strconv.FormatInt(*m.SVN, 10))
	}
	for _, f := range m.FWIDs {
		b.WriteString(" " + f.String())
	}
	for _, f := range m.Flags {
		b.WriteString(" " + f)
	}
	return b.String()
}

func optInt(p *int64) string {
	if p == nil {
		return "(unstated)"
	}
	return strconv.FormatInt(*p, 10)
}

// Quote renders a device-supplied string for a message or a log line:
// quoted with Go escapes, and at most 64 runes.
func Quote(s string) string {
	if utf8.RuneCountInString(s) > 64 {
		s = string([]rune(s)[:64]) + "…"
	}
	return strconv.Quote(s)
}

// Hash algorithms of FWIDs by dotted object identifier.
var hashAlgs = []struct {
	name, oid string
	size      int
}{
	{"sha256", "2.16.840.1.101.3.4.2.1", 32},
	{"sha384", "2.16.840.1.101.3.4.2.2", 48},
	{"sha512", "2.16.840.1.101.3.4.2.3", 64},
	{"sha3-256", "2.16.840.1.101.3.4.2.8", 32},
	{"sha3-384", "2.16.840.1.101.3.4.2.9", 48},
	{"sha3-512", "2.16.840.1.101.3.4.2.10", 64},
}

const oidSHA1 = "1.3.14.3.2.26"

// HashAlgName returns the name zdps uses for the FWID hash algorithm with
// the dotted object identifier oid: sha256 and the others above by name,
// any other algorithm by its dotted OID.
func HashAlgName(oid string) string {
	for _, h := range hashAlgs {
		if h.oid == oid {
			return h.name
		}
	}
	return oid
}

// MaxLayers, MaxAllowedFWIDs and MaxStringLength bound a
// firmware policy.
const (
	MaxLayers       = 64
	MaxAllowedFWIDs = 1024
	MaxStringLength = 256
	maxLayerNumber  = 1 << 20
)

// Validate checks the policy and normalises it in place: hash algorithm
// names, lower-case digests, flag spelling, empty lists removed.
func (p *Policy) Validate() error {
	if err := validateString("vendor", p.Vendor); err != nil {
		return err
	}
	if err := validateString("model", p.Model); err != nil {
		return err
	}
	for i, f := range p.ForbiddenFlags {
		field := "forbiddenFlags[" + strconv.Itoa(i) + "]"
		ok := false
		for _, n := range flagNames {
			if strings.EqualFold(f, n) {
				p.ForbiddenFlags[i], ok = n, true
			}
		}
		if !ok {
			return invalid(field, "%q is not an operational flag (use %s)", f, strings.Join(flagNames, ", "))
		}
		if slices.Contains(p.ForbiddenFlags[:i], p.ForbiddenFlags[i]) {
			return invalid(field, "%s is listed twice", p.ForbiddenFlags[i])
		}
	}
	if len(p.ForbiddenFlags) == 0 {
		p.ForbiddenFlags = nil
	}
	if len(p.Layers) > MaxLayers {
		return invalid("layers", "at most %d layers, not %d", MaxLayers, len(p.Layers))
	}
	if len(p.Layers) == 0 {
		p.Layers = nil
	}
	seen := map[int64]bool{}
	for i := range p.Layers {
		l := &p.Layers[i]
		if err := prefixed("layers["+strconv.Itoa(i)+"]", l.validate()); err != nil {
			return err
		}
		if seen[l.Layer] {
			return invalid("layers["+strconv.Itoa(i)+"].layer", "layer %d has more than one rule", l.Layer)
		}
		seen[l.Layer] = true
	}
	return nil
}

// flagNames mirror the OperationalFlags bits, by bit number.
var flagNames = []string{"notConfigured", "notSecure", "recovery", "debug"}

func (l *LayerPolicy) validate() error {
	if l.Layer < 0 || l.Layer > maxLayerNumber {
		return invalid("layer", "must be from 0 to %d", maxLayerNumber)
	}
	if err := validateString("vendor", l.Vendor); err != nil {
		return err
	}
	if err := validateString("model", l.Model); err != nil {
		return err
	}
	if l.MinSVN != nil && *l.MinSVN < 0 {
		return invalid("minSvn", "must not be negative")
	}
	if len(l.AllowedFWIDs) > MaxAllowedFWIDs {
		return invalid("allowedFwids", "at most %d digests, not %d", MaxAllowedFWIDs, len(l.AllowedFWIDs))
	}
	if len(l.AllowedFWIDs) == 0 {
		l.AllowedFWIDs = nil
	}
	for i := range l.AllowedFWIDs {
		if err := prefixed("allowedFwids["+strconv.Itoa(i)+"]", l.AllowedFWIDs[i].normalize()); err != nil {
			return err
		}
	}
	return nil
}

// normalize checks a digest given by an operator and puts it in canonical
// form.
func (d *Digest) normalize() error {
	alg := strings.TrimSpace(d.HashAlg)
	size := 0
	known := false
	for _, h := range hashAlgs {
		if strings.EqualFold(alg, h.name) || alg == h.oid {
			alg, size, known = h.name, h.size, true
		}
	}
	if !known {
		switch {
		case alg == "":
			return invalid("hashAlg", "is required (sha256, sha384, sha512, sha3-256, sha3-384, sha3-512 or a dotted OID)")
		case alg == oidSHA1 || strings.EqualFold(alg, "sha1"):
			return invalid("hashAlg", "SHA-1 is not accepted for firmware digests")
		case !isDottedOID(alg):
			return invalid("hashAlg", "%q is neither a known hash algorithm nor a dotted OID", alg)
		}
	}
	dig := strings.ToLower(strings.TrimSpace(d.Digest))
	raw, err := hex.DecodeString(dig)
	switch {
	case dig == "":
		return invalid("digest", "is required (hexadecimal)")
	case err != nil:
		return invalid("digest", "must be hexadecimal")
	case size != 0 && len(raw) != size:
		return invalid("digest", "a %s digest has %d bytes, not %d", alg, size, len(raw))
	case len(raw) > 128:
		return invalid("digest", "at most 128 bytes")
	}
	d.HashAlg, d.Digest = alg, dig
	return nil
}

func isDottedOID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 32 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 18 || (len(p) > 1 && p[0] == '0') {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return parts[0] == "0" || parts[0] == "1" || parts[0] == "2"
}

func validateString(field, s string) error {
	if len(s) > MaxStringLength {
		return invalid(field, "must be at most %d bytes", MaxStringLength)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == utf8.RuneError {
			return invalid(field, "must be printable UTF-8 without control characters")
		}
	}
	return nil
}

// Clone returns a deep copy (nil for nil).
func (p *Policy) Clone() *Policy {
	if p == nil {
		return nil
	}
	c := *p
	c.ForbiddenFlags = slices.Clone(p.ForbiddenFlags)
	c.Layers = slices.Clone(p.Layers)
	for i := range c.Layers {
		c.Layers[i].MinSVN = clonePtr(p.Layers[i].MinSVN)
		c.Layers[i].AllowedFWIDs = slices.Clone(p.Layers[i].AllowedFWIDs)
	}
	return &c
}

// Clone returns a deep copy (nil for nil).
func (s *DICEState) Clone() *DICEState {
	if s == nil {
		return nil
	}
	c := *s
	c.Measurements = slices.Clone(s.Measurements)
	for i, m := range s.Measurements {
		c.Measurements[i].Layer = clonePtr(m.Layer)
		c.Measurements[i].Index = clonePtr(m.Index)
		c.Measurements[i].SVN = clonePtr(m.SVN)
		c.Measurements[i].FWIDs = slices.Clone(m.FWIDs)
		c.Measurements[i].Flags = slices.Clone(m.Flags)
	}
	return &c
}

// ErrInvalid is wrapped by every error of Policy.Validate.
var ErrInvalid = errors.New("invalid firmware policy")

// FieldError is a policy Validate refuses: the field, as a JSON path
// relative to the policy, and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap lets callers test it with errors.Is(err, ErrInvalid).
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// prefixed re-roots a FieldError under a parent field.
func prefixed(parent string, err error) error {
	fe, ok := errors.AsType[*FieldError](err)
	if !ok {
		return err
	}
	if strings.HasPrefix(fe.Field, "[") || fe.Field == "" {
		return &FieldError{Field: parent + fe.Field, Reason: fe.Reason}
	}
	return &FieldError{Field: parent + "." + fe.Field, Reason: fe.Reason}
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
