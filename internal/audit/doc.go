// Package audit keeps zdps's tamper-evident audit trail: every
// provisioning decision and every management change as an Event, written
// by the caller in the same store transaction as the change (Record), so
// an event exists exactly when its change does and costs no extra commit.
//
// # The chain
//
// Record only inserts the event under a fresh, time-ordered key of its
// own (the pending bucket): the registration path touches no shared row,
// so concurrent registrations and replicas on PostgreSQL never conflict
// over the trail. A sealer (Log.Seal, run every second by Log.Run in each
// replica, one at a time through a lease stored with the chain) moves
// pending events, in key order, onto the chain: each chained entry holds
// a store-assigned sequence number, the SHA-256 of its predecessor and
// its own hash over the sequence, that link and the event's bytes as
// stored. The head (last sequence and hash) is signed at every round
// with the Signer; so is the checkpoint that retention (Log.Prune) leaves
// where it cut the chain.
//
// Verify walks the chain from the checkpoint to the signed head and names
// the first sequence where an entry was edited, deleted or inserted. What
// it cannot see, said plainly: an event deleted while still pending
// (before the sealer's next round, about a second), and a rollback of the
// whole trail to an older signed head; exporting events to a SIEM as they
// are sealed is the defence against both.
//
// Events never hold secrets: they name resources, ETags, outcomes and
// reason classes, never keys, SAS tokens, CSRs or payloads.
package audit
