package provisioning

import (
	"context"
)

// Authenticate checks a device's credentials without registering it: the
// attest and resolve steps of Register, no throttle counted, nothing
// stored. A transport that authenticates once per connection (MQTT's
// CONNECT) refuses a device early with it; every request on the
// connection still runs the whole pipeline. Errors are those of Register's
// first two steps: ErrUnauthorized, ErrInvalid, or a server fault.
func (s *Service) Authenticate(ctx context.Context, req *Request) (err error) {
	log := s.log
	if req != nil {
		log = log.With("registration_id", req.RegistrationID)
	}
	defer func() {
		if err != nil {
			s.logFailure(ctx, log, "authenticate", err)
		}
	}()
	id, err := s.attest(ctx, req)
	if err != nil {
		return err
	}
	if err := id.evidence().Check(); err != nil {
		return err
	}
	_, err = s.resolve(ctx, id)
	return err
}
