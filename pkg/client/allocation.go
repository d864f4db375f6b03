package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// createOnly is the header of a PUT that must not replace an existing
// resource: the service answers 409 (ErrConflict) when it exists.
func createOnly() http.Header { return http.Header{"If-None-Match": {"*"}} }

// ExplainRequest asks which hub each allocation policy would choose.
type ExplainRequest struct {
	RegistrationID string `json:"registrationId"`
	// EnrollmentGroupID names the group of a device that has no individual
	// enrollment and has not registered yet.
	EnrollmentGroupID string          `json:"enrollmentGroupId,omitempty"`
	Payload           json.RawMessage `json:"payload,omitempty"`
	SourceAddress     string          `json:"sourceAddress,omitempty"`
	// SourceRTTMs is the measured round trip to assume (geoLatency), ms.
	SourceRTTMs float64 `json:"sourceRttMs,omitempty"`
}

// HubEligibility says whether a linked hub may receive the device.
type HubEligibility struct {
	Hub         string `json:"hub"`
	Eligible    bool   `json:"eligible"`
	Reason      string `json:"reason,omitempty"`
	DeviceCount int    `json:"deviceCount"`
	Capacity    int    `json:"capacity,omitempty"`
}

// PolicyDecision is one policy's would-be choice.
type PolicyDecision struct {
	Policy    string `json:"policy"`
	Effective bool   `json:"effective"`
	Hub       string `json:"hub,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Explanation is the answer of ExplainAllocation.
type Explanation struct {
	RegistrationID    string `json:"registrationId"`
	EnrollmentKind    string `json:"enrollmentKind"`
	EnrollmentID      string `json:"enrollmentId"`
	EffectivePolicy   string `json:"effectivePolicy"`
	PinnedHub         string `json:"iotHubHostName,omitempty"`
	CurrentHub        string `json:"currentHub,omitempty"`
	ReprovisionPolicy struct {
		UpdateHubAssignment bool `json:"updateHubAssignment"`
		MigrateDeviceData   bool `json:"migrateDeviceData"`
	} `json:"reprovisionPolicy"`
	Hubs      []HubEligibility `json:"hubs"`
	Decisions []PolicyDecision `json:"decisions"`
}

// ExplainAllocation calls POST /allocation/explain. Explaining the custom
// policy calls the enrollment's webhook.
func (c *Client) ExplainAllocation(ctx context.Context, req ExplainRequest) (*Explanation, error) {
	if req.RegistrationID == "" {
		return nil, fmt.Errorf("client: explain without registrationId")
	}
	return call[Explanation](ctx, c, request{method: http.MethodPost, path: "/allocation/explain", body: req})
}
