package devicecmd

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"

	"github.com/zdps/zdps/pkg/device"
)

// tpmFlagHelp documents the TPM selector of --tpm.
const tpmFlagHelp = "the device's TPM: a device path (default " + device.DefaultTPMPath + " when the flag has no value), or unix:PATH for a simulator speaking the raw TPM command protocol on a Unix socket (swtpm --server type=unixio)"

// openTPM opens the TPM named by spec and prepares its EK and SRK.
func openTPM(spec string) (*device.TPM, error) {
	d, err := cmdutil.OpenTPM(spec)
	if err != nil {
		return nil, cmdutil.Errorf(err, "TPM %s: %v", spec, err)
	}
	return d, nil
}

// isTPMSpec tells a TPM selector (a device path or unix:PATH) from other
// words.
func isTPMSpec(s string) bool {
	return strings.HasPrefix(s, "unix:") || strings.HasPrefix(s, "/")
}

// NewTPMCmd is `zdps tpm`.
func NewTPMCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "tpm", "Read a TPM's identity for TPM enrollments", nil, newTPMEKCmd)
}

// tpmEKOutput is what `zdps tpm ek -o json` prints.
type tpmEKOutput struct {
	RegistrationID string `json:"registrationId"`
	EndorsementKey string `json:"endorsementKey"`
	StorageRootKey string `json:"storageRootKey"`
	// EndorsementKeyCertificate is the manufacturer's EK certificate from
	// the TPM's NV memory, base64 DER; empty when the TPM holds none.
	EndorsementKeyCertificate string `json:"endorsementKeyCertificate,omitempty"`
}

func newTPMEKCmd(g *cmdutil.Globals) *cobra.Command {
	spec := device.DefaultTPMPath
	cmd := &cobra.Command{
		Use:   "ek [--tpm DEVICE]",
		Short: "Print the TPM's endorsement key, storage root key and default registration ID",
		Long: `Print what a TPM enrollment needs: the endorsement key (EK) and storage root key
(SRK) as base64 TPM2B_PUBLIC, and the default registration ID derived from the EK
(lowercase base32 of its SHA-256, as the Azure device SDKs compute it).

The EK and SRK are read from the persistent handles 0x81010001 and 0x81000001 the
Azure SDKs use; when absent they are created from the TCG default RSA-2048
templates and persisted (this needs empty endorsement and owner authorisation).
The EK certificate, when the manufacturer stored one at NV index 0x01C00002, is
printed too (base64 DER): give it to zdps enrollment create --ek-certificate, or
let the device send it (zdps device register --tpm --ek-certificate tpm).`,
		Example: `  EK=$(zdps tpm ek -o json | jq -r .endorsementKey)
  zdps enrollment create "$(zdps tpm ek -o json | jq -r .registrationId)" --attestation tpm --endorsement-key "$EK"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.CheckOutput(); err != nil {
				return err
			}
			d, err := openTPM(spec)
			if err != nil {
				return err
			}
			defer d.Close()
			out := tpmEKOutput{
				RegistrationID: d.RegistrationID(),
				EndorsementKey: base64.StdEncoding.EncodeToString(d.EndorsementKey()),
				StorageRootKey: base64.StdEncoding.EncodeToString(d.StorageRootKey()),
			}
			cert, err := d.EKCertificate()
			switch {
			case err == nil:
				out.EndorsementKeyCertificate = base64.StdEncoding.EncodeToString(cert)
			case !errors.Is(err, device.ErrNoEKCertificate):
				return cmdutil.Errorf(err, "TPM %s: %v", spec, err)
			}
			p := g.Printer(cmd.OutOrStdout())
			if p.JSON {
				return p.PrintJSON(out)
			}
			certLine := out.EndorsementKeyCertificate
			if certLine == "" {
				certLine = "none in NV index 0x01C00002"
			}
			return p.Details("Registration ID", out.RegistrationID, "Endorsement key", out.EndorsementKey, "Storage root key", out.StorageRootKey, "EK certificate", certLine)
		},
	}
	cmd.Flags().StringVar(&spec, "tpm", spec, tpmFlagHelp)
	return cmd
}
