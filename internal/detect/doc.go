// Package detect finds anomalies in the audit trail and raises alerts:
//
//   - cloned credential: one registration ID authenticating from two
//     source networks (IPv4 /24, IPv6 /48), or with two different TLS
//     client keys, within a window;
//   - brute force: many authentication failures for one registration ID,
//     and enumeration: failures from one source network across many IDs;
//   - burst: an enrollment group registering far above its own recent
//     baseline (an EWMA of its per-minute rate, after a warm-up, so a new
//     group has no baseline to exceed);
//   - firmware downgrade: a DICE device refused for an SVN below its
//     policy; a revoked or unknown certificate presented for renewal.
//
// The Detector is fed the trail's events in sequence order (Watch runs it
// as a consumer of the sealed trail with a stored cursor and a lease, so
// one replica at a time sees what every replica recorded). It keeps at
// most Config.MaxKeys keys per rule, forgets a key when its window has
// passed, and counts what it had to drop (Saturated) rather than grow.
// Time is the events' own, so a replay gives the same alerts. One alert
// per rule and key is raised per window; later evidence in that window is
// folded into the open alert's count.
package detect
