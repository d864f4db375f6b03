// Package firmware is the firmware policy of enrollments and groups and
// the DICE measurements a device presents (docs/protocol.md#dice-measurements):
// what firmware a device registering with a TCG DICE certificate chain
// must run, and what its chain says it runs. It is a zdps extension of
// the DPS documents (the field "firmwarePolicy"; Azure tools ignore it).
// Standard library only: package enrollment embeds its types, the
// attestation/dice verifier matches them.
package firmware
