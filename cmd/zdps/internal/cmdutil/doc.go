// Package cmdutil is what every zdps management command shares: the
// global flags and how they resolve (flag, environment, data directory),
// the API client built from them, the table and JSON output, the one-line
// user errors and their exit status, and the small cobra helpers (parent
// commands, named arguments, delete commands, progress bars).
//
// It imports no command package; the command packages and package cli
// import it.
//
// Errors reach the user as one line on stderr ("zdps: enrollment "x" not
// found") and exit status 1; package client's errors are translated here
// (Fail, FailList), so no Go stack or raw JSON is shown.
package cmdutil
