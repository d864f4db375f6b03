// Package opscmd holds the store operations: `zdps backup` of a running
// server's bbolt store, `zdps restore` into a new data directory, `zdps
// compact` of a stopped server's file and `zdps migrate` between bbolt and
// PostgreSQL. Files are written through a synced temporary file and
// checked before they replace anything.
package opscmd
