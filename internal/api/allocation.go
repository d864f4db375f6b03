package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/store"
)

// This file serves the allocation side of the service API: device counts
// in hub answers, the write-time checks of enrollments, and
// POST /allocation/explain.

// Explainer answers which hub each allocation policy would choose for a
// device (provisioning.Service).
type Explainer interface {
	Explain(ctx context.Context, req provisioning.ExplainRequest) (*provisioning.Explanation, error)
}

type explainerBox struct{ e Explainer }

// SetExplainer makes POST /allocation/explain answer with e. Until it is
// called the route answers 503.
func (a *API) SetExplainer(e Explainer) { a.explainer.Store(&explainerBox{e}) }

// explainBody is the request of POST /allocation/explain.
type explainBody struct {
	RegistrationID    string          `json:"registrationId"`
	EnrollmentGroupID string          `json:"enrollmentGroupId,omitempty"`
	Payload           json.RawMessage `json:"payload,omitempty"`
	SourceAddress     string          `json:"sourceAddress,omitempty"`
	// SourceRTTMs is the measured round trip to assume, in milliseconds.
	SourceRTTMs float64 `json:"sourceRttMs,omitempty"`
}

var errNoExplainer = errors.New("allocation explain is not available: the device pipeline is not running on this instance")

func (a *API) explainAllocation(w http.ResponseWriter, r *http.Request) {
	box := a.explainer.Load()
	if box == nil || box.e == nil {
		a.writeError(w, r, fmt.Errorf("%w: %w", store.ErrClosed, errNoExplainer))
		return
	}
	b, err := requireBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req explainBody
	if err := decodeStrict(b, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.SourceRTTMs < 0 {
		a.writeError(w, r, fmt.Errorf("%w: sourceRttMs must not be negative", errBadRequest))
		return
	}
	x, err := box.e.Explain(r.Context(), provisioning.ExplainRequest{
		RegistrationID: req.RegistrationID, EnrollmentGroupID: req.EnrollmentGroupID,
		Payload: req.Payload, SourceAddr: req.SourceAddress, SourceRTT: time.Duration(req.SourceRTTMs * float64(time.Millisecond)),
	})
	switch {
	case errors.Is(err, provisioning.ErrInvalid):
		err = fmt.Errorf("%w: %w", errBadRequest, err)
	case errors.Is(err, provisioning.ErrNotFound):
		err = fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, x)
}

// decodeStrict decodes one JSON object refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: unexpected data after the JSON value", errBadRequest)
	}
	return nil
}
