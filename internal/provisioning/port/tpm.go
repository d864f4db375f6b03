package port

import (
	"context"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TPM attestation runs in two rounds (docs/protocol.md#tpm-challenge): the first register
// carries the EK and SRK and no Authorization, and the attestor answers it
// with a *TPMChallenge; the second carries a SAS signed with the key of
// the challenge, and the attestor returns an Identity whose TPM proof the
// pipeline honours here.

// TPMChallenge is the refusal of a TPM device's first round: it wraps
// ErrUnauthorized and carries the authenticationKey blob the transport
// answers (401 {"authenticationKey", "keyName", "message"}). The blob is
// encrypted to the device's TPM; it is not a secret, but it is no use to
// log either.
type TPMChallenge struct {
	// AuthenticationKey is the base64 activation blob.
	AuthenticationKey string
}

func (c *TPMChallenge) Error() string { return "provisioning: TPM challenge issued" }

// Unwrap makes a challenge an ErrUnauthorized for everyone who does not
// know about TPM.
func (c *TPMChallenge) Unwrap() error { return ErrUnauthorized }

// TPMProof is the Evidence of a TPM device that answered its challenge.
type TPMProof struct {
	NoEvidence
	// Spent says the challenge was already used by a registration. Register
	// refuses such a proof (a replay); polls and status lookups accept it
	// for the short window the attestor allows, because the SDKs reuse the
	// SAS of the second round for them.
	Spent bool
	// ClaimFunc marks the challenge used (Claim).
	ClaimFunc func(ctx context.Context, tx store.Tx) error
	// AuthenticationKey is the base64 activation blob for
	// registrationState.tpm.authenticationKey of the assigned answer; ""
	// when the request carried no tpm object (a poll).
	AuthenticationKey string
}

// Check refuses a Register whose TPM proof was spent.
func (p *TPMProof) Check() error {
	if p.Spent {
		return Refuse("TPM challenge already used", fmt.Errorf("%w: the TPM challenge was already used", ErrUnauthorized))
	}
	return nil
}

// Claim marks the challenge used inside the persisting transaction, so
// at most one registration ever commits per challenge; it returns an
// error wrapping ErrUnauthorized when another one did first.
func (p *TPMProof) Claim(ctx context.Context, tx store.Tx) error {
	if p.ClaimFunc == nil {
		return errors.New("provisioning: TPM proof without Claim")
	}
	return p.ClaimFunc(ctx, tx)
}

// Answer hands the device its authentication key.
func (p *TPMProof) Answer(op *enrollment.Operation) { op.TPMAuthenticationKey = p.AuthenticationKey }
