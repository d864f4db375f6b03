package deviceapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/pkg/dps"
)

// tpmChallenge is the 401 answer to a TPM device's first register
// (docs/protocol.md#tpm-challenge): the Node SDK reads authenticationKey from it, the C SDK
// too; keyName is always "registration".
type tpmChallenge struct {
	AuthenticationKey string `json:"authenticationKey"`
	KeyName           string `json:"keyName"`
	Message           string `json:"message"`
}

// writeChallenge answers a *port.TPMChallenge and reports whether
// err was one. The answer carries the DPS error headers as other refusals
// do.
func (a *API) writeChallenge(w http.ResponseWriter, r *http.Request, err error) bool {
	var ch *port.TPMChallenge
	if !errors.As(err, &ch) {
		return false
	}
	a.trackingID(w)
	w.Header().Set("x-ms-error-code", strconv.Itoa(dps.CodeUnauthorized))
	a.writeJSON(w, r, http.StatusUnauthorized, tpmChallenge{
		AuthenticationKey: ch.AuthenticationKey,
		KeyName:           "registration",
		Message:           "TPM challenge: activate the authenticationKey in the TPM and register again with a SAS signed by it.",
	})
	return true
}
