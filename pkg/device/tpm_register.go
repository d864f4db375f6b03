package device

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/zdps/zdps/pkg/dps"
)

// TPM registration (docs/protocol.md#tpm-challenge), as the Azure SDKs run it:
//
//  1. PUT register with tpm{endorsementKey, storageRootKey} and no
//     Authorization; the service answers 401 {"authenticationKey": blob}.
//  2. ActivateIdentityKey(blob): ActivateCredential with the EK, Import
//     under the SRK, persist at IdentityKeyHandle.
//  3. PUT register again, and poll, with a SAS whose sig is TPM2_HMAC of
//     "sr\nse" with that key (sr URL-encoded, as the Node TPM path).
//  4. On "assigned", ActivateIdentityKey(registrationState.tpm.
//     authenticationKey): the key the device keeps.

func (c *Client) tpmBody() *dps.DeviceTPM {
	if c.cfg.TPM == nil {
		return nil
	}
	return &dps.DeviceTPM{
		EndorsementKey: base64.StdEncoding.EncodeToString(c.cfg.TPM.EndorsementKey()),
		StorageRootKey: base64.StdEncoding.EncodeToString(c.cfg.TPM.StorageRootKey()),
	}
}

// tpmChallengeError carries the blob of a 401 challenge from once to
// tpmChallenge. It never leaves the package.
type tpmChallengeError struct{ blob []byte }

func (e *tpmChallengeError) Error() string { return "device: TPM challenge" }

// asTPMChallenge is once's hook: the 401 answer to the first round of a
// TPM registration is the challenge, not a refusal.
func (c *Client) asTPMChallenge(code int, raw []byte) error {
	if c.cfg.TPM == nil || c.tpmToken != "" || code != http.StatusUnauthorized {
		return nil
	}
	var ch struct {
		AuthenticationKey string `json:"authenticationKey"`
	}
	if json.Unmarshal(raw, &ch) != nil || ch.AuthenticationKey == "" {
		return nil // an ordinary refusal
	}
	blob, err := base64.StdEncoding.DecodeString(ch.AuthenticationKey)
	if err != nil {
		return malformed("the TPM challenge's authenticationKey is not base64")
	}
	return &tpmChallengeError{blob: blob}
}

// tpmChallenge runs round one and prepares the SAS of the rest of the
// registration. Without a TPM it does nothing.
func (c *Client) tpmChallenge(ctx context.Context, r *run, body []byte) error {
	if c.cfg.TPM == nil {
		return nil
	}
	c.tpmToken = ""
	_, err := r.exchange(ctx, request{body: body})
	var ch *tpmChallengeError
	switch {
	case errors.As(err, &ch):
	case err != nil:
		return err
	default:
		return malformed("the service did not answer the TPM registration with a challenge")
	}
	if err := c.cfg.TPM.ActivateIdentityKey(ch.blob); err != nil {
		return fmt.Errorf("device: activating the TPM challenge: %w", err)
	}
	se := strconv.FormatInt(c.cfg.Now().Add(c.cfg.TokenTTL).Unix(), 10)
	sig, err := c.cfg.TPM.SignWithIdentity([]byte(c.resource + "\n" + se))
	if err != nil {
		return fmt.Errorf("device: signing with the TPM: %w", err)
	}
	c.tpmToken = "SharedAccessSignature sr=" + c.resource + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)) + "&se=" + se + "&skn=registration"
	return nil
}

// tpmAssigned imports the key of the assigned answer into the TPM.
func (c *Client) tpmAssigned(ans *answer) error {
	if c.cfg.TPM == nil {
		return nil
	}
	var st struct {
		RegistrationState struct {
			TPM struct {
				AuthenticationKey string `json:"authenticationKey"`
			} `json:"tpm"`
		} `json:"registrationState"`
	}
	if json.Unmarshal(ans.raw, &st) != nil || strings.TrimSpace(st.RegistrationState.TPM.AuthenticationKey) == "" {
		return malformed("status assigned without registrationState.tpm.authenticationKey")
	}
	blob, err := base64.StdEncoding.DecodeString(st.RegistrationState.TPM.AuthenticationKey)
	if err != nil {
		return malformed("registrationState.tpm.authenticationKey is not base64")
	}
	if err := c.cfg.TPM.ActivateIdentityKey(blob); err != nil {
		return fmt.Errorf("device: activating the assigned TPM key: %w", err)
	}
	return nil
}

// tpmRegistrationID is the default registration ID of a TPM device.
func tpmRegistrationID(ek []byte) string { return dps.TPMRegistrationID(ek) }
