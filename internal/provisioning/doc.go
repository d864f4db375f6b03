// Package provisioning is the registration use case of zdps: the one
// pipeline every device request runs through, whatever the transport.
//
//	attest   → an Attestor per mechanism proves who the device is
//	resolve  → the individual enrollment for the registration ID first, then
//	           the group whose credential the device proved
//	allocate → the enrollment's iotHubHostName, else an allocation.Policy
//	           over the eligible hubs
//	issue    → an operational certificate from the request's CSR (Issuer)
//	persist  → registration record + certificate + operation in ONE store
//	           transaction
//
// The package depends on small interfaces (Attestor, Issuer,
// allocation.Policy) and on the typed store; cmd/zdps wires the concrete
// verifiers (adapters in internal/provisioning/symkey, internal/provisioning/caissuer),
// policies and backend.
//
// # Outcomes
//
// Register answers a stored enrollment.Operation whose status is assigned,
// failed (allocation failed: errorCode 400209; the DICE firmware policy
// refused the device: errorCode 403010, see dice.go) or disabled (the individual
// enrollment, or else the group, is disabled; a disabled individual
// enrollment refuses the device even when it proved a key of an enabled
// group). Refusals are errors: ErrUnauthorized (no or wrong credential, no
// enrollment, an enabled individual enrollment whose credential was not the
// one presented), ErrInvalid (bad registration ID, bad CSR). Any other
// error is a server fault.
//
// The payload answered to a device (registrationState.payload) is only
// the one a custom allocation webhook returned, as on Azure; the device's
// own payload is input to allocation (geoLatency, custom) and never
// echoed back.
//
// # Slow allocation
//
// With Config.AssignWait set, Register waits that long for allocate, issue
// and persist; a registration that takes longer (a slow custom webhook)
// answers an assigning operation and completes in the background under
// the same operation ID, bounded by Config.AssignTimeout. Polls read the
// store, so any replica answers them; an operation still assigning after
// its deadline answers failed (dps.CodeAssignmentTimedOut), and the late
// run can no longer commit. A device registering again while its
// operation is assigning joins it (same request) or is throttled
// (ErrThrottled). Wait lets a graceful shutdown finish the runs. See
// async.go for the ordering rules.
//
// # Throttling
//
// Config.Limits caps polls per device and registers per device, per group
// and per instance (limits.DefaultLimits are Azure's). They are counted only
// after attestation succeeded, keyed by the lower-cased registration ID,
// so unauthenticated requests cannot spend a device's budget; a refusal
// is a *limits.ThrottledError wrapping ErrThrottled, with RetryAfter. A poll of
// an operation still assigning is never refused and carries, in the
// operation's RetryAfter, when the next poll is admitted. Counters are in
// memory, per Service (internal/provisioning/limits).
//
// # Retention
//
// Nothing a device does grows the store without bound. Polls find an
// operation for Config.OperationTTL; PruneExpired deletes it after that
// (prune.go), and sweep.Run runs it on a timer. A device's new final
// operation deletes its previous one in the same transaction (async.go,
// replacePrevious), so a device registering in a loop keeps one. Its
// record lists only the certificates that may renew, the newest unexpired
// ones up to MaxRenewableCertificates (renew.go). A certificate's record
// stays until one CRL validity after it expired, revoked or not, so that a
// revoked one appears on a CRL signed after its expiry; then
// CertificatePruner deletes it.
//
// # Re-registration
//
// The device ID is the enrollment's deviceId, else the registration ID; it
// never depends on earlier records. The hub and substatus follow the
// reprovision policy (see nextState): first assignment is
// initialAssignment; updateHubAssignment=false keeps the hub; a move is
// deviceDataMigrated or deviceDataReset per migrateDeviceData, and a move
// back to the first hub is reprovisionedToInitialAssignment.
//
// # Security contract
//
//   - Nothing is written for a request that fails attestation, resolution
//     or CSR checks; a disabled or failed outcome writes only its operation
//     (so that a poll can answer it), never a registration record.
//   - A certificate is returned only after the transaction that stores it
//     with the registration record has committed; if the write fails, the
//     request fails and the certificate is never seen.
//   - Certificates are built by the Issuer from policy (CN = device ID); the
//     CSR's CN must equal the registration ID the device sent.
//   - Operation IDs are 128 random bits. Polls and status lookups are
//     authenticated like register, and an operation of another registration
//     ID answers ErrNotFound, exactly as an unknown one.
//   - The read-modify-write of a registration record runs inside one store
//     Update, computed only from what it reads there (it may run twice
//     under batching), with a compare-and-swap on the record's ETag; slow
//     work (allocation webhooks, CSR signing) runs before it.
//   - Logs carry registration_id, enrollment, hub, attestation and outcome;
//     never an Authorization header, key, signature, CSR or payload. Device
//     input refusals are logged by kind and by the fixed reason of their
//     Refusal ("CN does not match registrationId", "certificate revoked"),
//     never by message, because attestor and issuer messages may quote
//     what the device sent.
//
// Mechanism selection (Mechanism): a tpm body object means TPM, else an
// Authorization header means symmetric key, else a TLS client certificate
// means X.509. The X.509 attestor wired by cmd/zdps (internal/provisioning/renewal)
// tells a renewal from an enrollment: a leaf signed by zdps's own issuing
// intermediate is a renewal, any other chain walks the X.509 enrollments.
//
// # Renewal
//
// A device renews its operational certificate by registering over mutual
// TLS with it (its Evidence names the serial: Evidence.RenewalOf). The request must
// carry a CSR (else ErrInvalid wrapping ErrRenewalNeedsCSR). A renewal is
// a pure renewal: device ID and hub stay those of the current record, the
// allocator is not asked, the substatus is unchanged, and the payload
// answered stays the last custom webhook's; the new certificate is issued from
// policy and stored with the record in one transaction exactly as at a
// first registration. The transaction checks again that the record still
// lists the presented certificate, so a record deleted meanwhile is never
// re-created by a renewal. A disabled enrollment answers disabled.
//
// X.509 registrations (renewals included) keep a summary of the presented
// leaf and of the certificate its chain was verified to in the record
// (enrollment.Registration.X509), answered as registrationState.x509.
package provisioning
