package enrollment

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
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

// ValidateRegistrationID checks the DPS rule for registration IDs: 1 to 128
// ASCII alphanumerics and ": . _ -", not starting or ending with one of the
// special characters. IDs are compared case-insensitively (see Key).
func ValidateRegistrationID(id string) error { return validateID("registrationId", id) }

// ValidateGroupID applies the registration ID rule to enrollment group IDs.
func ValidateGroupID(id string) error { return validateID("enrollmentGroupId", id) }

// ValidateDeviceID applies the registration ID rule to device IDs.
func ValidateDeviceID(id string) error { return validateID("deviceId", id) }

func validateID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "is required")
	case len(id) > MaxIDLength:
		return invalid(field, "must be at most %d characters", MaxIDLength)
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
			return invalid(field, "character %q at position %d is not allowed (use letters, digits and \": . _ -\")", c, pos)
		}
		if i == 0 || i == len(id)-1 {
			return invalid(field, "must not start or end with %q", c)
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isIDSpecial(c rune) bool { return c == ':' || c == '.' || c == '_' || c == '-' }

// ValidateHostName checks a DNS host name with an optional ":port", the form
// of linked hub names and of the hub references in enrollments.
func ValidateHostName(name string) error { return validateHostName("name", name) }

func validateHostName(field, name string) error {
	if name == "" {
		return invalid(field, "is required")
	}
	host := name
	if h, port, ok := strings.Cut(name, ":"); ok {
		host = h
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || strings.ContainsAny(port, "+-") {
			return invalid(field, "port %q must be a number from 1 to 65535", port)
		}
	}
	if host == "" || len(host) > 253 {
		return invalid(field, "must be a host name of 1 to 253 characters")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return invalid(field, "%q is not a valid host name (each dot-separated label has 1 to 63 characters)", name)
		}
		for _, c := range label {
			if !isAlnum(c) && c != '-' {
				return invalid(field, "%q is not a valid host name (letters, digits, '-' and '.' only)", name)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return invalid(field, "%q is not a valid host name (a label may not start or end with '-')", name)
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
		return nil, invalid("", "must be standard base64 (with padding)")
	}
	if len(b) < MinKeyBytes || len(b) > MaxKeyBytes {
		return nil, invalid("", "must decode to %d to %d bytes, not %d", MinKeyBytes, MaxKeyBytes, len(b))
	}
	return b, nil
}

func validateKey(field, s string) error {
	if s == "" {
		return nil // generated on create (GenerateMissingKeys)
	}
	_, err := DecodeKey(s)
	return prefixed(field, err)
}

// NormalizeAllocationPolicy returns the canonical DPS spelling of an
// allocation policy name given in any case, and whether it is one.
func NormalizeAllocationPolicy(p string) (string, bool) {
	for _, c := range []string{PolicyHashed, PolicyGeoLatency, PolicyStatic, PolicyCustom} {
		if strings.EqualFold(p, c) {
			return c, true
		}
	}
	return "", false
}

func normalizePolicy(field string, p *string) error {
	c, ok := NormalizeAllocationPolicy(*p)
	if !ok {
		return invalid(field, "%q is not an allocation policy (use hashed, geoLatency, static or custom)", *p)
	}
	*p = c
	return nil
}

// ValidateWebhookURL checks a custom allocation webhook: an absolute http or
// https URL with a valid host.
func ValidateWebhookURL(s string) error { return validateWebhookURL("webhookUrl", s) }

func validateWebhookURL(field, s string) error {
	if s == "" {
		return invalid(field, "is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return invalid(field, "is not a URL")
	}
	if !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https") {
		return invalid(field, "must be an absolute http or https URL")
	}
	if u.Host == "" || u.Opaque != "" {
		return invalid(field, "must be an absolute http or https URL with a host")
	}
	if u.Hostname() == "" {
		return invalid(field, "must name a host")
	}
	return nil
}

// normalizeRaw makes a free-form JSON value canonical: JSON null becomes
// absent, and the bytes are compacted and HTML-escaped exactly as
// encoding/json would re-encode them, so a stored value survives
// encode/decode byte for byte.
func normalizeRaw(m *json.RawMessage) {
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

func validateObject(field string, m json.RawMessage) error {
	if m == nil {
		return nil
	}
	t := bytes.TrimSpace(m)
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return invalid(field, "must be a JSON object")
	}
	return nil
}

// common points at the fields that individual enrollments and groups share,
// so they are validated by one piece of code.
func (c *Spec) normalize() {
	if c.InitialTwin != nil {
		normalizeRaw(&c.InitialTwin.Tags)
		if p := c.InitialTwin.Properties; p != nil {
			normalizeRaw(&p.Desired)
		}
	}
	if len(c.IoTHubs) == 0 {
		c.IoTHubs = nil
	}
}

// validate checks the shared fields: attestation (TPM only for
// individual enrollments: DPS has no TPM groups), firmware policy, hubs,
// twin, status and allocation policy, normalising them in place.
func (c *Spec) validate(individual bool) error {
	if err := validateAttestation(c.Attestation, individual); err != nil {
		return err
	}
	if err := validateFirmwarePolicy(c.FirmwarePolicy); err != nil {
		return err
	}
	if c.Site != "" {
		if err := validateSiteName("site", c.Site); err != nil {
			return err
		}
	}
	c.normalize()
	if c.IoTHubHostName != "" {
		if err := validateHostName("iotHubHostName", c.IoTHubHostName); err != nil {
			return err
		}
	}
	if t := c.InitialTwin; t != nil {
		if err := validateObject("initialTwin.tags", t.Tags); err != nil {
			return err
		}
		if t.Properties != nil {
			if err := validateObject("initialTwin.properties.desired", t.Properties.Desired); err != nil {
				return err
			}
		}
	}
	switch {
	case c.ProvisioningStatus == "":
		c.ProvisioningStatus = StatusEnabled
	case strings.EqualFold(c.ProvisioningStatus, StatusEnabled):
		c.ProvisioningStatus = StatusEnabled
	case strings.EqualFold(c.ProvisioningStatus, StatusDisabled):
		c.ProvisioningStatus = StatusDisabled
	default:
		return invalid("provisioningStatus", "%q is not a status (use enabled or disabled)", c.ProvisioningStatus)
	}
	for i, h := range c.IoTHubs {
		if err := validateHostName("iotHubs["+strconv.Itoa(i)+"]", h); err != nil {
			return err
		}
	}
	if ca := c.CustomAllocationDefinition; ca != nil {
		if err := validateWebhookURL("customAllocationDefinition.webhookUrl", ca.WebhookURL); err != nil {
			return err
		}
	}
	if c.AllocationPolicy == "" {
		return nil // the instance's default policy applies
	}
	if err := normalizePolicy("allocationPolicy", &c.AllocationPolicy); err != nil {
		return err
	}
	switch c.AllocationPolicy {
	case PolicyCustom:
		if c.CustomAllocationDefinition == nil {
			return invalid("customAllocationDefinition", "is required with the custom allocation policy")
		}
	case PolicyStatic:
		if len(c.IoTHubs) > 1 || (len(c.IoTHubs) == 0 && c.IoTHubHostName == "") {
			return invalid("iotHubs", "the static allocation policy needs exactly one hub, not %d", len(c.IoTHubs))
		}
	}
	return nil
}

func validateAttestation(a *AttestationMechanism, individual bool) error {
	if a == nil {
		return invalid("attestation", "is required")
	}
	switch {
	case strings.EqualFold(a.Type, AttestationTPM):
		a.Type = AttestationTPM
	case strings.EqualFold(a.Type, AttestationX509):
		a.Type = AttestationX509
	case strings.EqualFold(a.Type, AttestationSymmetricKey):
		a.Type = AttestationSymmetricKey
	case a.Type == "":
		return invalid("attestation.type", "is required (tpm, x509 or symmetricKey)")
	default:
		return invalid("attestation.type", "%q is not an attestation type (use tpm, x509 or symmetricKey)", a.Type)
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{AttestationTPM, a.TPM != nil},
		{AttestationX509, a.X509 != nil},
		{AttestationSymmetricKey, a.SymmetricKey != nil},
	} {
		if f.set && f.name != a.Type {
			return invalid("attestation."+f.name, "must not be set when the attestation type is %s", a.Type)
		}
	}
	switch a.Type {
	case AttestationTPM:
		if !individual {
			return invalid("attestation.type", "tpm attestation is only available to individual enrollments")
		}
		if a.TPM == nil || a.TPM.EndorsementKey == "" {
			return invalid("attestation.tpm.endorsementKey", "is required")
		}
		if !isBase64(a.TPM.EndorsementKey) {
			return invalid("attestation.tpm.endorsementKey", "must be base64")
		}
		if a.TPM.StorageRootKey != "" && !isBase64(a.TPM.StorageRootKey) {
			return invalid("attestation.tpm.storageRootKey", "must be base64")
		}
		if c := a.TPM.EndorsementKeyCertificate; c != "" {
			if _, err := CertificateDER(c); err != nil {
				return prefixed("attestation.tpm.endorsementKeyCertificate", err)
			}
		}
	case AttestationSymmetricKey:
		if k := a.SymmetricKey; k != nil {
			if err := validateKey("attestation.symmetricKey.primaryKey", k.PrimaryKey); err != nil {
				return err
			}
			if err := validateKey("attestation.symmetricKey.secondaryKey", k.SecondaryKey); err != nil {
				return err
			}
		}
	case AttestationX509:
		return prefixed("attestation.x509", validateX509(a.X509, individual))
	}
	return nil
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

func validateX509(x *X509Attestation, individual bool) error {
	if x == nil {
		return invalid("", "is required when the attestation type is x509")
	}
	certsField, wrongField := "clientCertificates", "signingCertificates"
	certs, wrong := x.ClientCertificates, x.SigningCertificates
	if !individual {
		certsField, wrongField = wrongField, certsField
		certs, wrong = wrong, certs
	}
	if wrong != nil {
		if individual {
			return invalid(wrongField, "is for enrollment groups; individual enrollments use clientCertificates or caReferences")
		}
		return invalid(wrongField, "is for individual enrollments; groups use signingCertificates or caReferences")
	}
	switch {
	case certs != nil && x.CAReferences != nil:
		return invalid("", "set exactly one of %s and caReferences, not both", certsField)
	case certs != nil:
		return prefixed(certsField, validateCertificates(certs))
	case x.CAReferences != nil:
		return prefixed("caReferences", validateCAReferences(x.CAReferences))
	}
	return invalid("", "one of %s and caReferences is required", certsField)
}

func validateCertificates(c *X509Certificates) error {
	if c.Primary == nil {
		return invalid("primary", "is required")
	}
	if err := prefixed("primary", fillCertificate(c.Primary)); err != nil {
		return err
	}
	if c.Secondary != nil {
		return prefixed("secondary", fillCertificate(c.Secondary))
	}
	return nil
}

// fillCertificate parses the certificate and replaces any client-sent info
// with the summary of the certificate actually given (info is read-only).
func fillCertificate(c *X509CertificateWithInfo) error {
	if c.Certificate == "" {
		return invalid("certificate", "is required (PEM or base64 DER)")
	}
	cert, err := ParseCertificate(c.Certificate)
	if err != nil {
		return prefixed("certificate", err)
	}
	c.Info = CertificateInfo(cert)
	return nil
}

// MaxCANameLength bounds the name of a CA reference.
const MaxCANameLength = 256

func validateCAReferences(r *X509CAReferences) error {
	if r.Primary == "" {
		return invalid("primary", "is required")
	}
	for _, f := range []struct{ name, v string }{{"primary", r.Primary}, {"secondary", r.Secondary}} {
		if len(f.v) > MaxCANameLength {
			return invalid(f.name, "must be at most %d characters", MaxCANameLength)
		}
		for _, c := range f.v {
			if c < 0x20 || c == 0x7f {
				return invalid(f.name, "must not contain control characters")
			}
		}
	}
	return nil
}

// Validate checks the enrollment against the DPS rules and normalises it in
// place: canonical spelling of the attestation type, allocation policy and
// provisioning status (absent means enabled), compacted initial twin, and
// info filled from each X.509 certificate given. It does not touch the
// read-only fields; the Decode functions clear those.
func (e *IndividualEnrollment) Validate() error {
	if err := ValidateRegistrationID(e.RegistrationID); err != nil {
		return err
	}
	if e.DeviceID != "" {
		if err := ValidateDeviceID(e.DeviceID); err != nil {
			return err
		}
	}
	return e.Spec.validate(true)
}

// Validate is the group counterpart of IndividualEnrollment.Validate; TPM
// attestation is refused (DPS has no TPM groups).
func (g *EnrollmentGroup) Validate() error {
	if err := ValidateGroupID(g.EnrollmentGroupID); err != nil {
		return err
	}
	return g.Spec.validate(false)
}

// MaxHubWeight is the largest allocation weight of a linked hub.
const MaxHubWeight = 1000

// MaxRegionLength bounds a hub's free-form region label.
const MaxRegionLength = 64

// Validate checks a linked hub and normalises an absent weight (0) to 1.
func (h *Hub) Validate() error {
	if err := validateHostName("name", h.Name); err != nil {
		return err
	}
	switch {
	case h.AllocationWeight == 0:
		h.AllocationWeight = 1
	case h.AllocationWeight < 1 || h.AllocationWeight > MaxHubWeight:
		return invalid("allocationWeight", "must be from 1 to %d, not %d", MaxHubWeight, h.AllocationWeight)
	}
	if len(h.Region) > MaxRegionLength {
		return invalid("region", "must be at most %d characters", MaxRegionLength)
	}
	for _, c := range h.Region {
		if c < 0x20 || c == 0x7f {
			return invalid("region", "must not contain control characters")
		}
	}
	if (h.Latitude == nil) != (h.Longitude == nil) {
		return invalid("latitude", "latitude and longitude go together")
	}
	if h.Latitude != nil && (math.IsNaN(*h.Latitude) || *h.Latitude < -90 || *h.Latitude > 90) {
		return invalid("latitude", "must be from -90 to 90 degrees, not %v", *h.Latitude)
	}
	if h.Longitude != nil && (math.IsNaN(*h.Longitude) || *h.Longitude < -180 || *h.Longitude > 180) {
		return invalid("longitude", "must be from -180 to 180 degrees, not %v", *h.Longitude)
	}
	if h.Capacity < 0 {
		return invalid("capacity", "must be 0 (unlimited) or more, not %d", h.Capacity)
	}
	switch {
	case h.Status == "" || strings.EqualFold(h.Status, HubHealthy):
		h.Status = "" // healthy is the absence of a status
	case strings.EqualFold(h.Status, HubUnhealthy):
		h.Status = HubUnhealthy
	case strings.EqualFold(h.Status, HubDraining):
		h.Status = HubDraining
	default:
		return invalid("status", "%q is not a hub status (use healthy, unhealthy or draining)", h.Status)
	}
	return nil
}

// StaticHub is the one hub a static allocation names: the single entry of
// iotHubs, else iotHubHostName; "" when the enrollment names none.
func StaticHub(iotHubs []string, hostName string) string {
	if len(iotHubs) == 1 {
		return iotHubs[0]
	}
	return hostName
}

// MaxPolicyNameLength is the longest shared access policy name.
const MaxPolicyNameLength = 64

// ValidatePolicyName checks a shared access policy name: 1 to 64 ASCII
// alphanumerics and "-_.".
func ValidatePolicyName(name string) error {
	if name == "" {
		return invalid("keyName", "is required")
	}
	if len(name) > MaxPolicyNameLength {
		return invalid("keyName", "must be at most %d characters", MaxPolicyNameLength)
	}
	pos := 0 // in characters, as validateID
	for _, c := range name {
		pos++
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return invalid("keyName", "character %q at position %d is not allowed (use letters, digits and \"-_.\")", c, pos)
		}
	}
	return nil
}

// NormalizeRights parses Azure's comma-separated rights list, accepting any
// case and spacing, and returns it in canonical form: each right once, in
// the order of AllRights, separated by ", ".
func NormalizeRights(rights string) (string, error) {
	seen := make(map[string]bool)
	for _, r := range strings.Split(rights, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			if strings.TrimSpace(rights) == "" {
				return "", invalid("rights", "at least one right is required (%s)", strings.Join(AllRights, ", "))
			}
			return "", invalid("rights", "empty entry in the comma-separated list")
		}
		found := false
		for _, c := range AllRights {
			if strings.EqualFold(r, c) {
				seen[c], found = true, true
			}
		}
		if !found {
			return "", invalid("rights", "%q is not a right (use %s)", r, strings.Join(AllRights, ", "))
		}
	}
	out := make([]string, 0, len(seen))
	for _, c := range AllRights {
		if seen[c] {
			out = append(out, c)
		}
	}
	return strings.Join(out, ", "), nil
}

// Validate checks a shared access policy and normalises its rights list.
func (p *SharedAccessPolicy) Validate() error {
	if err := ValidatePolicyName(p.KeyName); err != nil {
		return err
	}
	r, err := NormalizeRights(p.Rights)
	if err != nil {
		return err
	}
	p.Rights = r
	if err := validateKey("primaryKey", p.PrimaryKey); err != nil {
		return err
	}
	return validateKey("secondaryKey", p.SecondaryKey)
}

// Validate checks the instance settings; an absent default allocation
// policy means hashed, as in DPS.
func (s *Settings) Validate() error {
	if s.DefaultAllocationPolicy == "" {
		s.DefaultAllocationPolicy = PolicyHashed
		return nil
	}
	return normalizePolicy("defaultAllocationPolicy", &s.DefaultAllocationPolicy)
}
