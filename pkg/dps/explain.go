package dps

import "encoding/json"

// POST /allocation/explain (a zdps extension, docs/protocol.md#service-api)
// answers which hub each allocation policy would choose for a device,
// without registering it.

// ExplainRequest is the body of POST /allocation/explain.
type ExplainRequest struct {
	RegistrationID string `json:"registrationId"`
	// EnrollmentGroupID names the group of a device that has no individual
	// enrollment and no registration record yet (a group device is only
	// known by its credential otherwise).
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	// Payload is the registration payload to assume (geoLatency, custom).
	Payload json.RawMessage `json:"payload,omitempty"`
	// SourceAddress is the device address to assume (geoLatency networks).
	SourceAddress string `json:"sourceAddress,omitempty"`
	// SourceRTTMs is the measured round trip to assume (geoLatency), in
	// milliseconds.
	SourceRTTMs float64 `json:"sourceRttMs,omitempty"`
}

// Explanation is the answer of POST /allocation/explain.
type Explanation struct {
	RegistrationID  string `json:"registrationId"`
	EnrollmentKind  string `json:"enrollmentKind"` // individualEnrollment or enrollmentGroup
	EnrollmentID    string `json:"enrollmentId"`
	EffectivePolicy string `json:"effectivePolicy"`
	PinnedHub       string `json:"iotHubHostName,omitempty"`
	CurrentHub      string `json:"currentHub,omitempty"`
	// ReprovisionPolicy is the enrollment's (enrollment.ReprovisionPolicy).
	ReprovisionPolicy ReprovisionPolicy `json:"reprovisionPolicy"`
	Hubs              []HubEligibility  `json:"hubs"`
	Decisions         []PolicyDecision  `json:"decisions"`
}

// ReprovisionPolicy is an enrollment's reprovisioning policy as an
// Explanation shows it.
type ReprovisionPolicy struct {
	UpdateHubAssignment bool `json:"updateHubAssignment"`
	MigrateDeviceData   bool `json:"migrateDeviceData"`
}

// HubEligibility says whether one linked hub may receive the device, and
// why not.
type HubEligibility struct {
	Hub         string `json:"hub"`
	Eligible    bool   `json:"eligible"`
	Reason      string `json:"reason,omitempty"`
	DeviceCount int    `json:"deviceCount"`
	Capacity    int    `json:"capacity,omitempty"`
}

// PolicyDecision is one policy's would-be decision.
type PolicyDecision struct {
	Policy string `json:"policy"`
	// Effective marks the policy the device's registration would use.
	Effective bool   `json:"effective"`
	Hub       string `json:"hub,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Error     string `json:"error,omitempty"`
}
