// Package revocation keeps the certificates zdps issued and withdraws
// them: the certificate records and their indexes, revocation in the
// transaction of the change that causes it, revocation jobs for the
// certificates of an enrollment or a group (stored with the change, worked
// through in short transactions, resumed after a crash), the signed CRL
// with a number that only moves forward across replicas, and the pruning
// of certificates that have expired long enough to leave the CRL.
//
// All its state is in the store, so any replica revokes, sweeps or
// publishes. The registration pipeline asks it, inside the transaction
// that would store a certificate, whether a job covers the device
// (Pending): a registration racing a delete or disable is then refused,
// so no certificate escapes a revocation (docs/architecture.md#the-ca-and-revocation).
//
// It needs the CA only through CRLSigner.
package revocation
