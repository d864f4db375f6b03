// Package allocation decides which linked hub a device is assigned to.
//
// One small interface, Policy, with one implementation per policy kind in
// a subpackage: allocation/hashed (weighted rendezvous hashing),
// allocation/static (the one hub the enrollment names),
// allocation/geolatency (nearest hub by configured proximity, ties by
// hashed) and allocation/custom (the DPS webhook). Registry dispatches by
// policy name; cmd/zdps builds it with every policy explicitly, never by
// init side effects.
//
// Contract for every Policy: it chooses only among Input.EligibleHubs (the
// caller, internal/provisioning, has already applied the enrollment's iotHubs
// list and removed hubs with applyAllocationPolicy=false, unhealthy or
// draining hubs, and hubs at capacity), it is safe for concurrent use, it
// never logs the payload, and it returns an error wrapping ErrNoHub,
// ErrUnknownPolicy or ErrPolicyFailed when the registration must fail
// (IsFailure); any other error is a server fault.
//
// Security: Input.Payload and Input.SourceAddr come from the device and
// are untrusted; policies use them only as placement hints, and a policy's
// Decision.Reason never quotes them beyond short, validated values.
package allocation
