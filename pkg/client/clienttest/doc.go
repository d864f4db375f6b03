// Package clienttest provides an in-memory fake of the zdps service API over
// TLS, for tests of code built on package client (the CLI, the importer).
//
// The fake checks what a client must get right, so that tests against it
// mean something: the SharedAccessSignature (signature, resource, policy,
// expiry), the api-version, percent-encoded IDs, If-Match ETags, paging with
// x-ms-continuation (absent on the last page) and per-item bulk errors. It
// does not reproduce the real server's validation; Intercept lets a test
// inject faults (5xx, throttling, dropped connections) in front of it.
package clienttest
