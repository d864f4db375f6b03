package deviceapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
)

// TestClassifyTransient: what the device should retry is 429 or 503,
// never 500; what it should not is a 4xx below 429.
func TestClassifyTransient(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   int
	}{
		{fmt.Errorf("postgres: transaction kept conflicting: %w", store.ErrBusy), http.StatusServiceUnavailable, dps.CodeUnavailable},
		{store.ErrClosed, http.StatusServiceUnavailable, dps.CodeUnavailable},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, dps.CodeUnavailable},
		{fmt.Errorf("%w: ca: intermediate certificate is not valid now", port.ErrUnavailable), http.StatusServiceUnavailable, dps.CodeUnavailable},
		{fmt.Errorf("%w: revocation pending", port.ErrThrottled), http.StatusTooManyRequests, dps.CodeThrottled},
		{fmt.Errorf("%w: no enrollment", port.ErrUnauthorized), http.StatusUnauthorized, dps.CodeUnauthorized},
		{errors.New("disk on fire"), http.StatusInternalServerError, dps.CodeInternal},
	}
	for _, tc := range tests {
		if status, code, _ := classify(tc.err); status != tc.status || code != tc.code {
			t.Errorf("classify(%v) = %d %d, want %d %d", tc.err, status, code, tc.status, tc.code)
		}
	}
}
