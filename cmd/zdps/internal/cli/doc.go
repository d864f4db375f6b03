// Package cli is the management half of the zdps binary: the cobra
// commands that call the service API through package client (enrollment,
// group, hub, registration, policy). cmd/zdps adds `serve` to the root.
//
// Every command reads one Config-like options struct filled from flags; the
// global ones (connection string, data directory, CA bundle, output format)
// are resolved once, in the order flag, environment, data directory. The
// policy key is read from there and handed to the client; it is never
// printed except by the commands whose job is to print keys.
//
// Errors reach the user as one line on stderr ("zdps: enrollment "x" not
// found") and exit status 1; package client's errors are translated here,
// so no Go stack or raw JSON is shown.
package cli
