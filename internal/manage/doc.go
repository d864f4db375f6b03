// Package manage holds the management use cases of zdps: writing,
// deleting and reading individual enrollments, enrollment groups, linked
// hubs, shared access policies, instance settings and registration
// records, and bulk changes of enrollments. Each change is one store
// transaction that checks its ETag condition, keeps or generates keys,
// and stores the revocation its change causes (internal/revocation), which
// it then runs, bounded, before returning.
//
// It knows nothing of HTTP: internal/api decodes requests, authorizes them,
// calls a use case, maps its errors (store and enrollment sentinels) to
// the DPS error format and writes the audit event.
package manage
