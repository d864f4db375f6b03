package provisioning

import (
	"context"
	"log/slog"

	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
)

// This file applies the throttle's limits (internal/provisioning/limits,
// Config.Limits) where the pipeline counts: once the device
// authenticated.

// checkRegister applies the register limits to an authenticated device,
// the narrowest first (limits.Set.Register).
func (s *Service) checkRegister(regID string, t *target) error {
	return s.lim.Register(regID, t.groupID(), s.now())
}

// checkSource refuses a source an alert response blocked.
func (s *Service) checkSource(ctx context.Context, req *port.Request) error {
	if s.cfg.SourceBlocked == nil || req == nil {
		return nil
	}
	if d, blocked := s.cfg.SourceBlocked(ctx, req.RemoteAddr); blocked {
		return limits.Blocked(req.RemoteAddr, d)
	}
	return nil
}

// checkPoll applies the poll limit to an authenticated device.
func (s *Service) checkPoll(regID string) error {
	return s.lim.Poll(regID, s.now())
}

// logThrottled logs a refusal by the Limits at INFO, at most once per
// interval per device and limit.
func (s *Service) logThrottled(ctx context.Context, log *slog.Logger, what string, te *limits.ThrottledError) {
	if !s.lim.ShouldLog(te, s.now()) {
		return
	}
	log.InfoContext(ctx, what+" refused", "outcome", OutcomeThrottled, "limit", te.Limit, "retry_after", te.RetryAfter)
}
