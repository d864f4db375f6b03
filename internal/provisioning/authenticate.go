package provisioning

import (
	"context"

	"github.com/zdps/zdps/internal/provisioning/port"
)

// Authenticate checks a device's credentials without registering it: the
// attest and resolve steps of Register, no throttle counted, nothing
// stored. A transport that authenticates once per connection (MQTT's
// CONNECT) refuses a device early with it. On success it sets
// req.Attested, so that the connection's first register (a copy of req
// with the same credentials) is not attested a second time; every other
// request still runs the whole pipeline. Errors are those of Register's
// first two steps: ErrUnauthorized, ErrInvalid, or a server fault.
func (s *Service) Authenticate(ctx context.Context, req *port.Request) (err error) {
	log := s.requestLog(req)
	defer s.logIfFailed(ctx, log, "authenticate", &err)
	id, err := s.attest(ctx, req)
	if err != nil {
		return err
	}
	if err := evidence(id).Check(); err != nil {
		return err
	}
	if _, err := s.resolve(ctx, id); err != nil {
		return err
	}
	req.Attested = port.NewAttested(id, req, s.now())
	return nil
}
