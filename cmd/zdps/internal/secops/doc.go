// Package secops is the security operations side of `zdps serve`: its
// flags, and the parts it wires in over the store (the metrics, the
// sealed audit trail with its buffer, the alerts and the source
// blocklist), the exporters to a SIEM, the anomaly detector and its
// automatic responses, audit retention, the posture routes and the plain
// metrics listener. The parts themselves live in internal/audit,
// internal/export, internal/detect, internal/posture and internal/metrics;
// this package only builds and starts them.
package secops
