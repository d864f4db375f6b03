package api

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
)

// TestClassifyBusy: contention past the store's retry budget is transient
// (503, which clients retry after Retry-After), never a server fault.
func TestClassifyBusy(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("postgres: transaction kept conflicting (30 attempts): %w", store.ErrBusy),
		store.ErrClosed,
	} {
		if status, code, _ := classify(err); status != http.StatusServiceUnavailable || code != dps.CodeUnavailable {
			t.Errorf("classify(%v) = %d %d, want 503 %d", err, status, code, dps.CodeUnavailable)
		}
	}
}
