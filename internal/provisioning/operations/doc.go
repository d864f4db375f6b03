// Package operations keeps the register operations of the pipeline in the
// store: the record a device polls while, and after, it registers
// (docs/protocol.md#registration-states). It makes them, closes an assigning one
// with its final state by compare-and-swap, replaces a device's previous
// final operation with its new one, expires one whose deadline passed and
// prunes those whose retention ended. What an operation says is decided by
// internal/provisioning; this package only keeps the store consistent
// with it, in the caller's transaction where one is given.
package operations
