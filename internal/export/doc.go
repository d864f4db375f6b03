// Package export streams the audit trail (internal/audit), alerts
// included, to a SIEM: JSON Lines appended to a file, syslog (RFC 5424
// messages over TCP or TLS, octet-counted as RFC 6587 frames), or an
// HTTPS webhook (batches signed with HMAC-SHA256 like the custom
// allocation webhook).
//
// Delivery is at least once. An Exporter reads chained events after its
// stored cursor, hands a batch to its Sink, and moves the cursor only
// after the sink confirmed the batch (the file synced, the syslog bytes
// written, the webhook's 2xx). A crash between the two delivers that
// batch again after the restart: receivers deduplicate by the event's
// id, which never changes. One replica exports a sink at a time (a lease
// stored beside the cursor); a sink that fails is retried with
// exponential backoff, and nothing is skipped while it is down.
//
// Only sealed events are exported, in sequence order, each line or
// message one JSON object: the audit.Event fields plus "seq" (the schema
// is in docs/audit.md).
package export
