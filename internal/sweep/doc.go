// Package sweep deletes expired records from a store bucket in bounded
// transactions, for the retention sweeps of the packages that own those
// records (provisioning's operations, tpmatt's challenges), and runs the
// owners' Pruners on a timer (Run).
//
// It knows nothing about what it deletes: the owner decides, inside the
// deleting transaction, whether a record has expired, and deletes it
// through its typed collection so that indexes stay consistent.
package sweep
