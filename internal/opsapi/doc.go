// Package opsapi serves the security operations part of the service API:
//
//	GET  /audit?since=&until=&action=&registrationId=&outcome=&after=&limit=
//	GET  /audit/verify
//	GET  /alerts?status=&after=&limit=
//	GET  /alerts/{id}
//	POST /alerts/{id}/ack          (If-Match: the alert's etag, optional)
//	GET  /posture?expiryDays=&keyAgeDays=&unusedDays=
//	GET  /metrics                  (Prometheus text format)
//
// Every route needs a service SAS with the ServiceConfig right (checked by
// internal/api, whose error format and mapping it answers with); /metrics
// also admits a bearer scrape token. It only translates: the trail, the
// alerts and the posture are internal/audit's, internal/detect's and
// internal/posture's.
package opsapi
