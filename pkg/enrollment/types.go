package enrollment

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/enrollment/check"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// Attestation types (AttestationMechanism.Type).
const (
	AttestationTPM          = "tpm"
	AttestationX509         = "x509"
	AttestationSymmetricKey = "symmetricKey"
)

// Provisioning statuses.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Allocation policy names, exactly as DPS spells them.
const (
	PolicyHashed     = "hashed"
	PolicyGeoLatency = "geoLatency"
	PolicyStatic     = "static"
	PolicyCustom     = "custom"
)

// Registration statuses; devices compare them case-sensitively.
const (
	RegistrationUnassigned = "unassigned"
	RegistrationAssigning  = "assigning"
	RegistrationAssigned   = "assigned"
	RegistrationFailed     = "failed"
	RegistrationDisabled   = "disabled"
)

// Registration substatuses (docs/protocol.md#allocation-and-reprovisioning).
const (
	SubstatusInitialAssignment                = "initialAssignment"
	SubstatusDeviceDataMigrated               = "deviceDataMigrated"
	SubstatusDeviceDataReset                  = "deviceDataReset"
	SubstatusReprovisionedToInitialAssignment = "reprovisionedToInitialAssignment"
)

// AttestationMechanism says how a device proves its identity.
type AttestationMechanism struct {
	Type         string                   `json:"type"`
	TPM          *TPMAttestation          `json:"tpm,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
}

// TPMAttestation holds base64 TPM2B_PUBLIC structures.
type TPMAttestation struct {
	EndorsementKey string `json:"endorsementKey,omitempty"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
	// EndorsementKeyCertificate is a zdps extension: the TPM's EK
	// certificate (base64 DER or PEM) as its manufacturer supplied it. It
	// must certify EndorsementKey. A registration checks it against the
	// manufacturer roots (zdps serve --tpm-ek-roots) unless the device
	// sends its own in the payload.
	EndorsementKeyCertificate string `json:"endorsementKeyCertificate,omitempty"`
	// RequireEndorsementKeyCertificate is a zdps extension: the device is
	// refused unless an EK certificate (the device's or the enrollment's)
	// chains to the manufacturer roots, whatever the instance requires.
	RequireEndorsementKeyCertificate bool `json:"requireEndorsementKeyCertificate,omitempty"`
}

// SymmetricKeyAttestation holds base64 keys of 16 to 64 bytes.
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// X509Attestation names the certificates a device chain must match. Exactly
// one of the three is set: client certificates (individual enrollments),
// signing certificates (groups), or references to registered CA certificates.
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
	CAReferences        *X509CAReferences `json:"caReferences,omitempty"`
}

// X509Certificates is a primary and an optional secondary certificate.
type X509Certificates struct {
	Primary   *X509CertificateWithInfo `json:"primary,omitempty"`
	Secondary *X509CertificateWithInfo `json:"secondary,omitempty"`
}

// X509CertificateWithInfo carries a certificate (PEM or base64 DER) on
// write; zdps answers with Info filled in and Certificate omitted, as DPS
// does.
type X509CertificateWithInfo struct {
	Certificate string               `json:"certificate,omitempty"`
	Info        *X509CertificateInfo `json:"info,omitempty"`
}

// X509CertificateInfo is the read-only summary of a certificate.
type X509CertificateInfo struct {
	SubjectName      string `json:"subjectName"`
	SHA1Thumbprint   string `json:"sha1Thumbprint"`
	SHA256Thumbprint string `json:"sha256Thumbprint"`
	IssuerName       string `json:"issuerName"`
	NotBeforeUTC     string `json:"notBeforeUtc"`
	NotAfterUTC      string `json:"notAfterUtc"`
	SerialNumber     string `json:"serialNumber"`
	Version          int    `json:"version"`
}

// X509CAReferences names CA certificates registered with zdps.
type X509CAReferences struct {
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// DeviceCapabilities of an enrollment.
type DeviceCapabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// InitialTwin is the twin state a hub gives the device at first assignment.
// Its content is free-form JSON and kept as sent.
type InitialTwin struct {
	Tags       json.RawMessage        `json:"tags,omitempty"`
	Properties *InitialTwinProperties `json:"properties,omitempty"`
}

// InitialTwinProperties holds the desired properties.
type InitialTwinProperties struct {
	Desired json.RawMessage `json:"desired,omitempty"`
}

// ReprovisionPolicy says what happens when a registered device registers
// again. Both fields default to true when absent, as in DPS.
type ReprovisionPolicy struct {
	UpdateHubAssignment bool `json:"updateHubAssignment"`
	MigrateDeviceData   bool `json:"migrateDeviceData"`
}

// UnmarshalJSON applies the DPS defaults (true) to absent fields.
func (p *ReprovisionPolicy) UnmarshalJSON(b []byte) error {
	type plain ReprovisionPolicy
	v := plain{UpdateHubAssignment: true, MigrateDeviceData: true}
	if err := check.StrictUnmarshal(b, &v); err != nil {
		return err
	}
	*p = ReprovisionPolicy(v)
	return nil
}

// CustomAllocationDefinition names the webhook of the custom policy.
type CustomAllocationDefinition struct {
	WebhookURL string `json:"webhookUrl"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// RegistrationState is the read-only view of a device's registration that
// DPS embeds in enrollments and answers on GET /registrations/{id}
// (DeviceRegistrationState).
type RegistrationState struct {
	RegistrationID         string     `json:"registrationId"`
	CreatedDateTimeUTC     *time.Time `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string     `json:"assignedHub,omitempty"`
	DeviceID               string     `json:"deviceId,omitempty"`
	Status                 string     `json:"status"`
	Substatus              string     `json:"substatus,omitempty"`
	ErrorCode              int        `json:"errorCode,omitempty"`
	ErrorMessage           string     `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC *time.Time `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string     `json:"etag,omitempty"`
	// DICE is a zdps extension: see Registration.DICE.
	DICE *firmware.DICEState `json:"dice,omitempty"`
	// InitialTwin is a zdps extension of the service API only (never in a
	// device answer): see Registration.InitialTwin.
	InitialTwin json.RawMessage `json:"initialTwin,omitempty"`
	// Site and Gateway are zdps extensions of the service API only: see
	// Registration.Site.
	Site    string `json:"site,omitempty"`
	Gateway string `json:"gateway,omitempty"`
}

// Spec is what an individual enrollment and an enrollment group share:
// how a device proves itself, whether it may register, and where and how
// it is assigned. Both embed it, so the JSON wire form keeps these fields
// flat, in the order DPS writes them.
type Spec struct {
	Attestation                *AttestationMechanism       `json:"attestation"`
	Capabilities               *DeviceCapabilities         `json:"capabilities,omitempty"`
	IoTHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
	// FirmwarePolicy is a zdps extension (ignored by Azure tools): the
	// DICE firmware every device of the enrollment must run (firmware.go).
	FirmwarePolicy *firmware.Policy `json:"firmwarePolicy,omitempty"`
	// Site is a zdps extension (ignored by Azure tools): the edge site
	// (site.go) whose gateways receive this enrollment or group through
	// their change feed; "" for none.
	Site string `json:"site,omitempty"`
}

// IndividualEnrollment enrolls one device.
type IndividualEnrollment struct {
	Versioned
	RegistrationID    string             `json:"registrationId"`
	DeviceID          string             `json:"deviceId,omitempty"`
	RegistrationState *RegistrationState `json:"registrationState,omitempty"`
	Spec
}

// EnrollmentGroup enrolls every device whose chain or derived key leads to it.
type EnrollmentGroup struct {
	Versioned
	EnrollmentGroupID string `json:"enrollmentGroupId"`
	Spec
}

// Registration is the stored record of a device's registration. Its wire
// form for the service API is State(); the device API answers with its own
// DeviceRegistrationResult built from it.
type Registration struct {
	Versioned
	RegistrationID     string          `json:"registrationId"`
	DeviceID           string          `json:"deviceId,omitempty"`
	AssignedHub        string          `json:"assignedHub,omitempty"`
	InitialHub         string          `json:"initialHub,omitempty"`
	Status             string          `json:"status"`
	Substatus          string          `json:"substatus,omitempty"`
	ErrorCode          int             `json:"errorCode,omitempty"`
	ErrorMessage       string          `json:"errorMessage,omitempty"`
	AttestationType    string          `json:"attestationType,omitempty"`
	EnrollmentGroupID  string          `json:"enrollmentGroupId,omitempty"`
	Payload            json.RawMessage `json:"payload,omitempty"`
	CertificateSerials []string        `json:"certificateSerials,omitempty"`
	// X509 summarises the certificates of the last registration when it
	// was attested by X.509 (renewals included), nil otherwise.
	X509 *RegistrationX509 `json:"x509,omitempty"`
	// DICE is a zdps extension: the DeviceID key and the firmware
	// measurements of the last registration with a DICE chain.
	DICE *firmware.DICEState `json:"dice,omitempty"`
	// InitialTwin is a zdps extension: the twin the assigned hub should
	// give the device, as of the last assignment: the custom allocation
	// webhook's initialTwin, else the enrollment's (individual, else
	// group). zdps writes to no hub; the hub's operator reads it here.
	InitialTwin json.RawMessage `json:"initialTwin,omitempty"`
	// CertificateExpiry is the NotAfter of each of CertificateSerials (by
	// lower-case serial). CertificateSerials lists the certificates that
	// may renew, the newest unexpired ones only (at most
	// provisioning.MaxRenewableCertificates); with their NotAfter here,
	// expired ones are dropped without reading their certificates. Older
	// certificates stay in the certificate collection, where revocation
	// finds them. Internal: the service API and devices never see either.
	CertificateExpiry map[string]time.Time `json:"certificateExpiry,omitempty"`
	// Site and Gateway are zdps extensions of the service API: the site
	// and the registration ID of the edge gateway that registered the
	// device, both "" for a registration made at this zdps.
	Site    string `json:"site,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// GatewayETag is the ETag the record had at its gateway, which makes
	// the gateway's repeated pushes of one record idempotent. Internal.
	GatewayETag string `json:"gatewayEtag,omitempty"`
	// RegisteredAt is when the gateway created the record (the store sets
	// CreatedDateTimeUTC when central stores it): the time the conflict
	// rule of two registrations compares. Internal.
	RegisteredAt *time.Time `json:"registeredAt,omitempty"`
}

// ServiceState is the service API's form of the record: State plus the
// initial twin, which devices are never shown (DPS gives it to the hub,
// not to the device).
func (r *Registration) ServiceState() *RegistrationState {
	s := r.State()
	if len(r.InitialTwin) > 0 {
		s.InitialTwin = append(json.RawMessage(nil), r.InitialTwin...)
	}
	s.Site, s.Gateway = r.Site, r.Gateway
	return s
}

// State is the DPS wire form of the record, as devices see it.
func (r *Registration) State() *RegistrationState {
	return &RegistrationState{
		RegistrationID:         r.RegistrationID,
		CreatedDateTimeUTC:     r.CreatedDateTimeUTC,
		AssignedHub:            r.AssignedHub,
		DeviceID:               r.DeviceID,
		Status:                 r.Status,
		Substatus:              r.Substatus,
		ErrorCode:              r.ErrorCode,
		ErrorMessage:           r.ErrorMessage,
		LastUpdatedDateTimeUTC: r.LastUpdatedDateTimeUTC,
		ETag:                   r.ETag,
		DICE:                   r.DICE.Clone(),
	}
}

// Hub is a linked hub instance that devices can be assigned to.
type Hub struct {
	Versioned
	// Name is the hub's host name, as devices will connect to it.
	Name string `json:"name"`
	// AllocationWeight is 1 to 1000; absent means 1.
	AllocationWeight int `json:"allocationWeight"`
	// ApplyAllocationPolicy false keeps the hub out of policy decisions; it
	// can still be named by an enrollment's iotHubHostName.
	ApplyAllocationPolicy *bool  `json:"applyAllocationPolicy,omitempty"`
	Region                string `json:"region,omitempty"`
	// Latitude and Longitude (degrees, WGS 84) place the hub for the
	// geoLatency policy; both or neither.
	Latitude  *float64 `json:"latitude,omitempty"`
	Longitude *float64 `json:"longitude,omitempty"`
	// Capacity is the most devices the hub may hold; 0 means unlimited. A
	// full hub is skipped for new assignments (devices already on it stay).
	Capacity int `json:"capacity,omitempty"`
	// Status is healthy (absent), unhealthy or draining. Unhealthy and
	// draining hubs get no new devices; devices already on them stay.
	Status string `json:"status,omitempty"`
	// DeviceCount is read-only: how many registration records name the
	// hub, filled in by the service API's answers and ignored on write.
	DeviceCount *int `json:"deviceCount,omitempty"`
}

// Hub statuses.
const (
	HubHealthy   = "healthy"
	HubUnhealthy = "unhealthy"
	HubDraining  = "draining"
)

// AppliesPolicy reports whether allocation policies may choose the hub.
func (h *Hub) AppliesPolicy() bool { return h.ApplyAllocationPolicy == nil || *h.ApplyAllocationPolicy }

// AcceptsNewDevices reports whether the hub's status lets it receive new
// assignments (healthy or absent).
func (h *Hub) AcceptsNewDevices() bool { return h.Status == "" || h.Status == HubHealthy }

// HasCoordinates reports whether the hub has a position.
func (h *Hub) HasCoordinates() bool { return h.Latitude != nil && h.Longitude != nil }

// Rights of shared access policies, as Azure names them.
const (
	RightServiceConfig           = "ServiceConfig"
	RightEnrollmentRead          = "EnrollmentRead"
	RightEnrollmentWrite         = "EnrollmentWrite"
	RightRegistrationStatusRead  = "RegistrationStatusRead"
	RightRegistrationStatusWrite = "RegistrationStatusWrite"
)

// AllRights in their canonical order.
var AllRights = []string{RightServiceConfig, RightEnrollmentRead, RightEnrollmentWrite, RightRegistrationStatusRead, RightRegistrationStatusWrite}

// OwnerPolicyName is the policy zdps creates at first start with every right.
const OwnerPolicyName = "provisioningserviceowner"

// SharedAccessPolicy grants rights on the service API to holders of its keys.
// Rights is Azure's comma-separated list ("EnrollmentRead, EnrollmentWrite").
type SharedAccessPolicy struct {
	Versioned
	KeyName      string `json:"keyName"`
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
	Rights       string `json:"rights"`
}

// HasRight reports whether the policy grants right.
func (p *SharedAccessPolicy) HasRight(right string) bool {
	for _, r := range strings.Split(p.Rights, ",") {
		if strings.TrimSpace(r) == right {
			return true
		}
	}
	return false
}

// Settings are the instance-wide configuration values kept in the store.
type Settings struct {
	Versioned
	IDScope                 string `json:"idScope"`
	DefaultAllocationPolicy string `json:"defaultAllocationPolicy"`
}

// Key normalises an ID for lookups: registration IDs, group IDs, hub names
// and policy names are case-insensitive.
func Key(id string) string { return strings.ToLower(id) }
