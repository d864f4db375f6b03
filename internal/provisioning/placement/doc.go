// Package placement is the allocate step of the registration pipeline:
// which hubs a resolved enrollment may go to (eligibility), which policy
// decides (precedence), the capacity check the persisting transaction
// runs, and the same decisions explained without registering anything
// (POST /allocation/explain). It exists apart from internal/provisioning
// so that the pipeline reads as its steps and the rules of hub choice are
// in one place; it is handed the enrollment already resolved (Target) and
// never attests, issues or writes.
//
// Precedence: an enrollment's iotHubHostName (deprecated in DPS, kept for
// compatibility) pins the hub; else the enrollment's allocationPolicy;
// else the instance's defaultAllocationPolicy; else hashed. The policy is
// read at each registration, so a change applies to later registrations
// only; devices already assigned move only when they register again and
// their reprovision policy lets them.
//
// Eligibility, in order: the enrollment's iotHubs, or every linked hub
// when empty; minus hubs with applyAllocationPolicy=false (except for the
// static policy and an iotHubHostName pin, which name their hub
// explicitly); minus unhealthy and draining hubs; minus hubs at capacity
// (a device already on a hub holds its slot there).
//
// The linked hubs and the instance settings are read through a short
// cache (cache.go, DefaultReadCacheTTL).
package placement
