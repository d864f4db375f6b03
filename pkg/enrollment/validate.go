package enrollment

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"

	"github.com/zdps/zdps/pkg/enrollment/check"
)

// MaxIDLength is the longest registration ID, device ID or enrollment group
// ID that DPS accepts.
const MaxIDLength = check.MaxIDLength

// Key sizes accepted for symmetric keys and shared access policy keys, in
// decoded bytes (DPS rule).
const (
	MinKeyBytes = check.MinKeyBytes
	MaxKeyBytes = check.MaxKeyBytes
)

// ValidateRegistrationID checks the DPS rule for registration IDs: 1 to 128
// ASCII alphanumerics and ": . _ -", not starting or ending with one of the
// special characters. IDs are compared case-insensitively (see Key).
func ValidateRegistrationID(id string) error { return check.ID("registrationId", id) }

// ValidateGroupID applies the registration ID rule to enrollment group IDs.
func ValidateGroupID(id string) error { return check.ID("enrollmentGroupId", id) }

// ValidateDeviceID applies the registration ID rule to device IDs.
func ValidateDeviceID(id string) error { return check.ID("deviceId", id) }

// ValidateHostName checks a DNS host name with an optional ":port", the form
// of linked hub names and of the hub references in enrollments.
func ValidateHostName(name string) error { return check.HostName("name", name) }

// DecodeKey decodes a base64 symmetric key or policy key and checks its
// length (16 to 64 bytes). Only the canonical standard encoding is
// accepted, so a stored key has exactly one spelling.
func DecodeKey(s string) ([]byte, error) { return check.DecodeKey(s) }

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
		return check.Invalid(field, "%q is not an allocation policy (use hashed, geoLatency, static or custom)", *p)
	}
	*p = c
	return nil
}

// ValidateWebhookURL checks a custom allocation webhook: an absolute http or
// https URL with a valid host.
func ValidateWebhookURL(s string) error { return check.WebhookURL("webhookUrl", s) }

// common points at the fields that individual enrollments and groups share,
// so they are validated by one piece of code.
func (c *Spec) normalize() {
	if c.InitialTwin != nil {
		check.NormalizeRaw(&c.InitialTwin.Tags)
		if p := c.InitialTwin.Properties; p != nil {
			check.NormalizeRaw(&p.Desired)
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
		if err := check.SiteName("site", c.Site); err != nil {
			return err
		}
	}
	c.normalize()
	if c.IoTHubHostName != "" {
		if err := check.HostName("iotHubHostName", c.IoTHubHostName); err != nil {
			return err
		}
	}
	if t := c.InitialTwin; t != nil {
		if err := check.Object("initialTwin.tags", t.Tags); err != nil {
			return err
		}
		if t.Properties != nil {
			if err := check.Object("initialTwin.properties.desired", t.Properties.Desired); err != nil {
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
		return check.Invalid("provisioningStatus", "%q is not a status (use enabled or disabled)", c.ProvisioningStatus)
	}
	for i, h := range c.IoTHubs {
		if err := check.HostName("iotHubs["+strconv.Itoa(i)+"]", h); err != nil {
			return err
		}
	}
	if ca := c.CustomAllocationDefinition; ca != nil {
		if err := check.WebhookURL("customAllocationDefinition.webhookUrl", ca.WebhookURL); err != nil {
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
			return check.Invalid("customAllocationDefinition", "is required with the custom allocation policy")
		}
	case PolicyStatic:
		if len(c.IoTHubs) > 1 || (len(c.IoTHubs) == 0 && c.IoTHubHostName == "") {
			return check.Invalid("iotHubs", "the static allocation policy needs exactly one hub, not %d", len(c.IoTHubs))
		}
	}
	return nil
}

func validateAttestation(a *AttestationMechanism, individual bool) error {
	if a == nil {
		return check.Invalid("attestation", "is required")
	}
	switch {
	case strings.EqualFold(a.Type, AttestationTPM):
		a.Type = AttestationTPM
	case strings.EqualFold(a.Type, AttestationX509):
		a.Type = AttestationX509
	case strings.EqualFold(a.Type, AttestationSymmetricKey):
		a.Type = AttestationSymmetricKey
	case a.Type == "":
		return check.Invalid("attestation.type", "is required (tpm, x509 or symmetricKey)")
	default:
		return check.Invalid("attestation.type", "%q is not an attestation type (use tpm, x509 or symmetricKey)", a.Type)
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
			return check.Invalid("attestation."+f.name, "must not be set when the attestation type is %s", a.Type)
		}
	}
	switch a.Type {
	case AttestationTPM:
		if !individual {
			return check.Invalid("attestation.type", "tpm attestation is only available to individual enrollments")
		}
		if a.TPM == nil || a.TPM.EndorsementKey == "" {
			return check.Invalid("attestation.tpm.endorsementKey", "is required")
		}
		if !isBase64(a.TPM.EndorsementKey) {
			return check.Invalid("attestation.tpm.endorsementKey", "must be base64")
		}
		if a.TPM.StorageRootKey != "" && !isBase64(a.TPM.StorageRootKey) {
			return check.Invalid("attestation.tpm.storageRootKey", "must be base64")
		}
		if c := a.TPM.EndorsementKeyCertificate; c != "" {
			if _, err := CertificateDER(c); err != nil {
				return check.Prefixed("attestation.tpm.endorsementKeyCertificate", err)
			}
		}
	case AttestationSymmetricKey:
		if k := a.SymmetricKey; k != nil {
			if err := check.Key("attestation.symmetricKey.primaryKey", k.PrimaryKey); err != nil {
				return err
			}
			if err := check.Key("attestation.symmetricKey.secondaryKey", k.SecondaryKey); err != nil {
				return err
			}
		}
	case AttestationX509:
		return check.Prefixed("attestation.x509", validateX509(a.X509, individual))
	}
	return nil
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

func validateX509(x *X509Attestation, individual bool) error {
	if x == nil {
		return check.Invalid("", "is required when the attestation type is x509")
	}
	certsField, wrongField := "clientCertificates", "signingCertificates"
	certs, wrong := x.ClientCertificates, x.SigningCertificates
	if !individual {
		certsField, wrongField = wrongField, certsField
		certs, wrong = wrong, certs
	}
	if wrong != nil {
		if individual {
			return check.Invalid(wrongField, "is for enrollment groups; individual enrollments use clientCertificates or caReferences")
		}
		return check.Invalid(wrongField, "is for individual enrollments; groups use signingCertificates or caReferences")
	}
	switch {
	case certs != nil && x.CAReferences != nil:
		return check.Invalid("", "set exactly one of %s and caReferences, not both", certsField)
	case certs != nil:
		return check.Prefixed(certsField, validateCertificates(certs))
	case x.CAReferences != nil:
		return check.Prefixed("caReferences", validateCAReferences(x.CAReferences))
	}
	return check.Invalid("", "one of %s and caReferences is required", certsField)
}

func validateCertificates(c *X509Certificates) error {
	if c.Primary == nil {
		return check.Invalid("primary", "is required")
	}
	if err := check.Prefixed("primary", fillCertificate(c.Primary)); err != nil {
		return err
	}
	if c.Secondary != nil {
		return check.Prefixed("secondary", fillCertificate(c.Secondary))
	}
	return nil
}

// fillCertificate parses the certificate and replaces any client-sent info
// with the summary of the certificate actually given (info is read-only).
func fillCertificate(c *X509CertificateWithInfo) error {
	if c.Certificate == "" {
		return check.Invalid("certificate", "is required (PEM or base64 DER)")
	}
	cert, err := ParseCertificate(c.Certificate)
	if err != nil {
		return check.Prefixed("certificate", err)
	}
	c.Info = CertificateInfo(cert)
	return nil
}

// MaxCANameLength bounds the name of a CA reference.
const MaxCANameLength = 256

func validateCAReferences(r *X509CAReferences) error {
	if r.Primary == "" {
		return check.Invalid("primary", "is required")
	}
	if err := check.Label("primary", r.Primary, MaxCANameLength); err != nil {
		return err
	}
	return check.Label("secondary", r.Secondary, MaxCANameLength)
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
	if err := check.HostName("name", h.Name); err != nil {
		return err
	}
	switch {
	case h.AllocationWeight == 0:
		h.AllocationWeight = 1
	case h.AllocationWeight < 1 || h.AllocationWeight > MaxHubWeight:
		return check.Invalid("allocationWeight", "must be from 1 to %d, not %d", MaxHubWeight, h.AllocationWeight)
	}
	if err := check.Label("region", h.Region, MaxRegionLength); err != nil {
		return err
	}
	if (h.Latitude == nil) != (h.Longitude == nil) {
		return check.Invalid("latitude", "latitude and longitude go together")
	}
	if h.Latitude != nil && (math.IsNaN(*h.Latitude) || *h.Latitude < -90 || *h.Latitude > 90) {
		return check.Invalid("latitude", "must be from -90 to 90 degrees, not %v", *h.Latitude)
	}
	if h.Longitude != nil && (math.IsNaN(*h.Longitude) || *h.Longitude < -180 || *h.Longitude > 180) {
		return check.Invalid("longitude", "must be from -180 to 180 degrees, not %v", *h.Longitude)
	}
	if h.Capacity < 0 {
		return check.Invalid("capacity", "must be 0 (unlimited) or more, not %d", h.Capacity)
	}
	switch {
	case h.Status == "" || strings.EqualFold(h.Status, HubHealthy):
		h.Status = "" // healthy is the absence of a status
	case strings.EqualFold(h.Status, HubUnhealthy):
		h.Status = HubUnhealthy
	case strings.EqualFold(h.Status, HubDraining):
		h.Status = HubDraining
	default:
		return check.Invalid("status", "%q is not a hub status (use healthy, unhealthy or draining)", h.Status)
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
const MaxPolicyNameLength = check.MaxPolicyNameLength

// ValidatePolicyName checks a shared access policy name: 1 to 64 ASCII
// alphanumerics and "-_.".
func ValidatePolicyName(name string) error { return check.PolicyName(name) }

// NormalizeRights parses Azure's comma-separated rights list, accepting any
// case and spacing, and returns it in canonical form: each right once, in
// the order of AllRights, separated by ", ".
func NormalizeRights(rights string) (string, error) {
	seen := make(map[string]bool)
	for _, r := range strings.Split(rights, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			if strings.TrimSpace(rights) == "" {
				return "", check.Invalid("rights", "at least one right is required (%s)", strings.Join(AllRights, ", "))
			}
			return "", check.Invalid("rights", "empty entry in the comma-separated list")
		}
		found := false
		for _, c := range AllRights {
			if strings.EqualFold(r, c) {
				seen[c], found = true, true
			}
		}
		if !found {
			return "", check.Invalid("rights", "%q is not a right (use %s)", r, strings.Join(AllRights, ", "))
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
	if err := check.Key("primaryKey", p.PrimaryKey); err != nil {
		return err
	}
	return check.Key("secondaryKey", p.SecondaryKey)
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
