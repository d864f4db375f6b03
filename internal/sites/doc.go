// Package sites is the central side of edge gateways: the use cases behind
// the sites resource of the service API and the gateway API
// (internal/gatewayapi translates for both).
//
//   - Sites: named places with their hubs (enrollment.Site), and the last
//     status each of their gateways reported.
//   - The change feed (feed.go): every write to an enrollment, a group, a
//     site or a deleted registration record appends, in the write's own
//     transaction, an entry to the feed of each site it concerns (a move
//     from site A to B is a delete for A and an upsert for B), so no
//     change is lost or seen out of order; Pull serves a site's snapshot
//     then its entries from a cursor kept by the gateway, with the
//     documents' symmetric keys sealed to the gateway (internal/gatewaykey).
//   - Authentication (auth.go): a gateway is a TLS client certificate this
//     zdps issued, stored, unrevoked and unexpired, of a registration whose
//     enrollment (individual, else group) has capabilities.iotEdge and a
//     site that exists. The site is always taken from there.
//   - Delegated CAs (siteca.go): a site CA for the gateway's CA key, each
//     issuance stored and audited; the enrollment or group that made the
//     gateway leaves the feed then (no gateway holds another's
//     credentials). A gateway that loses its right (record deleted,
//     enrollment disabled, deleted or moved, site deleted) loses its site
//     CAs in the same transaction: they are stored revoked, so central's
//     CRL lists them.
//   - Ingest (records.go, auditin.go): records and audit events the gateway
//     pushes, idempotent by (registration ID, ETag) and by event ID; a
//     registration ID held elsewhere (central or another gateway) is a
//     cloned credential, resolved by the earliest registration winning and
//     the other's certificates being revoked, and audited for the
//     detector's cloned-credential alert.
//   - Retention (retention.go): feed entries, remembered audit IDs and
//     conflict answers older than the retention are pruned; an older
//     cursor must start a new snapshot.
//
// Security contract: everything a gateway sends is bounded and validated
// here; a gateway can only act for its own site (records of the site's
// enrollments, leaf certificates under its own site CAs).
package sites
