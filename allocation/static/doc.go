// Package static is the DPS "static" allocation policy: the device goes to
// the one hub its enrollment names (the single entry of iotHubs, else
// iotHubHostName). The service API refuses, when the enrollment is
// written, a static enrollment whose hub is not linked; the policy still
// fails the registration (allocation.ErrNoHub) when the hub has since been
// unlinked or is not eligible (draining, unhealthy, full, or
// applyAllocationPolicy=false).
package static
