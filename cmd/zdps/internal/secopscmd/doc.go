// Package secopscmd holds the security operations commands: `zdps audit`
// (list, follow and verify the tamper-evident audit trail), `zdps alert`
// (the anomaly rules' alerts and their acknowledgement) and `zdps
// posture` (what to fix, scored). They read the server's /audit, /alerts
// and /posture routes, which need a policy with the ServiceConfig right.
package secopscmd
