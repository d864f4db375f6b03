package provisioning

import (
	"context"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/internal/provisioning/placement"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// This file hands the allocation step to internal/provisioning/placement
// (eligibility, precedence, capacity) and stores its failures.

// placement is what hub choice reads of the target.
func (t *target) placement() placement.Target {
	return placement.Target{Individual: t.individual, Group: t.group, HostName: t.hostName, Policy: t.policy,
		IotHubs: t.iotHubs, Reprov: t.reprov, Custom: t.spec.CustomAllocationDefinition}
}

// allocate decides the hub the device should have if it may move
// (placement.Placer.Allocate).
func (s *Service) allocate(ctx context.Context, t *target, req *port.Request, id *port.Identity, cur *enrollment.Registration) (allocation.Decision, error) {
	in := allocation.Input{
		RegistrationID: req.RegistrationID,
		Payload:        req.Payload,
		CurrentHub:     placement.CurrentHub(cur),
		SourceAddr:     req.RemoteAddr,
		SourceRTT:      req.RTT,
	}
	if in.CurrentHub != "" {
		in.CurrentDeviceID = cur.DeviceID
	}
	if id != nil {
		in.AttestationType = id.Type
	}
	return s.place.Allocate(ctx, t.placement(), in)
}

// failAllocation stores and answers the failed operation of an allocation
// failure.
func (s *Service) failAllocation(ctx context.Context, r *registration, cause error) (*enrollment.Operation, error) {
	op := s.book.Failed(r.opID, r.req.RegistrationID, dps.CodeAllocationFailed, placement.Message(cause))
	if err := s.book.Final(ctx, op); err != nil {
		return nil, err
	}
	r.log.WarnContext(ctx, "registration failed", "outcome", OutcomeFailed, "reason", op.ErrorMessage)
	return op, nil
}
