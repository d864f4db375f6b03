// Package cli is the management half of the zdps binary: the root
// command, its global flags, and the wiring of the command packages
// (enrollcmd, hubcmd, cacmd, devicecmd, opscmd) that call the service API
// through package client. cmd/zdps adds `serve` to the root.
//
// The global flags (connection string, data directory, CA bundle, output
// format) are resolved in package cmdutil, in the order flag,
// environment, data directory. The policy key is read from there and
// handed to the client; it is never printed except by the commands whose
// job is to print keys.
package cli
