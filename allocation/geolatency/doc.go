// Package geolatency is the DPS "geoLatency" allocation policy: the device
// goes to the nearest eligible hub, ties broken by the hashed policy.
//
// zdps cannot probe from every hub to every device at registration time;
// "latency" here means proximity, configured or measured, in this order:
//
//  1. the device's payload field "location": {"lat": <degrees>, "lon":
//     <degrees>} (WGS 84), measured against hubs' latitude/longitude by
//     great-circle distance;
//  2. the device's payload field "region": "<name>", where a hub of the
//     same region (case-insensitive) is at distance 0 and other hubs are
//     measured between region coordinates when known;
//  3. the device's source address, mapped to a region by the configured
//     networks (Config.Networks; `zdps serve --geo-network CIDR=REGION`),
//     the longest matching prefix winning;
//  4. the round trip measured to the device: the kernel's RTT estimate on
//     the TCP connection it registered over (Input.SourceRTT). A device at
//     most Config.LocalRTT away is in Config.LocalRegion, the region of
//     this zdps instance (`--geo-local-region`, `--geo-local-rtt`): in a
//     deployment with replicas per region, the replica a device reached
//     and how fast it answers tell where the device is. A farther device
//     is not placed by it;
//  5. otherwise the location is unknown and the hashed policy decides
//     among all eligible hubs.
//
// A region's coordinates come from Config.Regions (`--geo-region
// NAME=LAT,LON`), else from the first eligible hub (by name) of that
// region that has coordinates. A hub whose distance cannot be computed
// is farther than every hub whose distance can.
//
// Security: the payload and the source address are device input and only
// steer placement among hubs the enrollment may use anyway; reasons quote
// only a validated region name (at most 64 printable characters).
package geolatency
