package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/zdps/zdps/pkg/dps"
)

// createOnly is the header of a PUT that must not replace an existing
// resource: the service answers 409 (ErrConflict) when it exists.
func createOnly() http.Header { return http.Header{"If-None-Match": {"*"}} }

// The wire types of POST /allocation/explain.
type (
	// ExplainRequest asks which hub each allocation policy would choose.
	ExplainRequest = dps.ExplainRequest
	// Explanation is the answer of ExplainAllocation.
	Explanation = dps.Explanation
	// HubEligibility says whether a linked hub may receive the device.
	HubEligibility = dps.HubEligibility
	// PolicyDecision is one policy's would-be choice.
	PolicyDecision = dps.PolicyDecision
)

// ExplainAllocation calls POST /allocation/explain. Explaining the custom
// policy calls the enrollment's webhook.
func (c *Client) ExplainAllocation(ctx context.Context, req ExplainRequest) (*Explanation, error) {
	if req.RegistrationID == "" {
		return nil, fmt.Errorf("client: explain without registrationId")
	}
	return call[Explanation](ctx, c, request{method: http.MethodPost, path: "/allocation/explain", body: req})
}
