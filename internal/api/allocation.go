package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/zdps/zdps/internal/api/apirequest"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
)

// This file serves the allocation side of the service API: device counts
// in hub answers, the write-time checks of enrollments, and
// POST /allocation/explain.

// Explainer answers which hub each allocation policy would choose for a
// device (provisioning.Service).
type Explainer interface {
	Explain(ctx context.Context, req provisioning.ExplainRequest) (*dps.Explanation, error)
}

type explainerBox struct{ e Explainer }

// SetExplainer makes POST /allocation/explain answer with e. Until it is
// called the route answers 503.
func (a *API) SetExplainer(e Explainer) { a.explainer.Store(&explainerBox{e}) }

var errNoExplainer = errors.New("allocation explain is not available: the device pipeline is not running on this instance")

func (a *API) explainAllocation(w http.ResponseWriter, r *http.Request) {
	box := a.explainer.Load()
	if box == nil || box.e == nil {
		a.writeError(w, r, fmt.Errorf("%w: %w", store.ErrClosed, errNoExplainer))
		return
	}
	b, err := apirequest.RequireBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req dps.ExplainRequest
	if err := strictJSON(b, &req); err != nil {
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
	case errors.Is(err, port.ErrInvalid):
		err = fmt.Errorf("%w: %w", errBadRequest, err)
	case errors.Is(err, port.ErrNotFound):
		err = fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, x)
}
