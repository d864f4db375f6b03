package provisioning

import (
	"context"

	"github.com/zdps/zdps/internal/provisioning/port"
)

// SetDetachedHook makes Register call f after it stopped waiting for a
// registration and before it stores the assigning state, so that a test
// can let the run finish first.
func SetDetachedHook(s *Service, f func()) { s.testHookDetached = f }

// Mechanism is the service's choice of attestor for req, and the context
// it hands the attestor.
func (s *Service) Mechanism(ctx context.Context, req *port.Request) (string, context.Context) {
	return s.mechanism(ctx, req)
}
