// Package gatewayapi is the transport of edge gateways at the central
// zdps. It serves two route sets and only translates (the decisions are
// internal/sites'):
//
// The sites resource of the service API (service SAS with the
// ServiceConfig right, checked by internal/api, whose error format it
// answers with):
//
//	GET    /sites                 (paged: x-ms-max-item-count, x-ms-continuation)
//	GET    /sites/{name}
//	PUT    /sites/{name}          (If-Match / If-None-Match)
//	DELETE /sites/{name}          (If-Match)
//
// The gateway API, authenticated only by the gateway's TLS client
// certificate (internal/sites.Authenticate; no SAS, no api-version):
//
//	POST /gateway/v1/ca           {"csr"} → {"certificateChain"}
//	GET  /gateway/v1/changes?cursor=&limit=
//	POST /gateway/v1/records      {"records"} → {"results"}
//	POST /gateway/v1/audit        {"events"} → {"recorded","duplicates"}
//	POST /gateway/v1/status       {"lastSync","backlog","caNotAfter","caSerial"}
//
// Bodies are strictly decoded (unknown fields refused): nothing in a
// request can name a site, which is always the authenticated gateway's.
// Errors are in the DPS format; an unauthenticated gateway gets 401 and a
// device that is not a gateway 403, with the reason in the log only.
package gatewayapi
