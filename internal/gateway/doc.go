// Package gateway is the edge side of edge gateways (zdps serve
// --upstream): what keeps a gateway's store in step with the central zdps
// through its gateway API (docs/protocol.md#gateway-api).
//
// # What it owns
//
//   - Client speaks the gateway API, authenticated by the gateway's TLS
//     client certificate (its device certificate from central).
//   - Outbox wraps the store's backend so that every write of a
//     registration record marks it for upstream in the same transaction
//     (bucket "gateway-outbox", key the record's key, value its ETag): a
//     record can never be stored without being pushed later.
//   - Syncer runs one sync after another: pull the feed from the stored
//     cursor and apply it through the management use cases (central state
//     wins; a delete or disable revokes locally, as at central), push the
//     outbox's records and the sealed audit trail from stored cursors,
//     report status.
//   - ReadOnly wraps the enrollment and group use cases the service API
//     is given: writes are refused with a 409 naming central.
//
// # Delivery
//
// Everything is at least once and idempotent: a page of changes is
// applied, then its cursor stored (applying an upsert or a delete twice
// changes nothing); an outbox entry is deleted only after central
// answered for it, and only if the record's ETag is still the one pushed;
// the audit cursor moves after central recorded the events. Central
// dedups records by (registration ID, ETag) and events by ID, so a
// gateway killed at any point loses nothing and duplicates nothing
// upstream.
package gateway
