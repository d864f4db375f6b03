// Package decision records what the registration pipeline decided: the
// audit events (in the transaction that stores a registration, or
// buffered for a refusal, which stores nothing) and the metrics, named by
// a few fixed classes, never by a message. It exists apart from
// internal/provisioning so that what the trail and the metrics say of a
// registration is written in one place, from the Facts the pipeline
// learned, and the pipeline's steps only report them.
package decision
