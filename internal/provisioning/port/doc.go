// Package port holds the ports of the registration pipeline: what a
// transport hands it (Request), what an attestor proves (Identity, and a
// mechanism's Evidence and Verdict), what an issuer is asked and returns
// (LeafPolicy, Issued), the interfaces they implement (Attestor, Issuer),
// the sentinel errors every answer wraps, and the fixed reasons refusals
// are logged with (Refusal). It exists apart from internal/provisioning so
// that the adapters (symkey, x509att, tpmatt, renewal, caissuer) and the
// transports depend on the contract, not on the pipeline, and the
// pipeline's own parts below it (limits, decision) share its errors.
//
// Security contract: a Refusal's reason is a constant chosen by code,
// never device input, so it may be logged where the wrapped error's
// message (which may quote what the device sent) may not.
package port
