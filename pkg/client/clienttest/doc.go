// Package clienttest runs the real zdps service API (internal/api on an
// in-memory store, bootstrapped like a first start) over TLS on 127.0.0.1,
// for tests of code built on package client (the CLI, the importer).
//
// Because it is the real API, tests against it check what the server
// really does: SharedAccessSignature verification, api-version, strict
// decoding and validation, ETags, paging with x-ms-continuation and
// per-item bulk errors. Intercept lets a test inject faults (5xx,
// throttling, dropped connections) in front of it.
package clienttest
