// Package instance performs the first-start initialisation of a zdps
// instance, idempotently and safely when several replicas start at once:
// the ID scope and default allocation policy (Settings), and the owner
// shared access policy with its Azure-format connection string.
//
// Security contract: the owner connection string grants every right; it is
// written only to a file with mode 0600 and never logged.
package instance
