// Package ctxtime is waiting that a context cuts short: the retry
// backoffs of the PostgreSQL backend, the import engine and the bench's
// rate limiter wait through it (Sleep), and the CA's reload and a
// gateway's renewal run on its ticker (Every), instead of each keeping a
// copy of the same timer and select. Standard library only.
package ctxtime
