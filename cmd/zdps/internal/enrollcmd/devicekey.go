package enrollcmd

import (
	"encoding/base64"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// computeDeviceKeyConfig is the configuration of `zdps group
// compute-device-key`.
type computeDeviceKeyConfig struct {
	GroupID        string
	RegistrationID string
	GroupKey       string
	Secondary      bool
}

func newComputeDeviceKeyCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg computeDeviceKeyConfig
	cmd := &cobra.Command{
		Use:   "compute-device-key GROUP_ID REGISTRATION_ID",
		Short: "Derive a device's symmetric key from its group's key",
		Long: `Derive the key a device of a symmetric-key enrollment group signs with:
base64(HMAC-SHA256(group key, registration ID)). The group key is fetched through
the API, or given with --group-key to work offline.`,
		Args: cmdutil.ExactArgs("GROUP_ID", "REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.GroupID, cfg.RegistrationID = args[0], args[1]
			return runComputeDeviceKey(cmd, g, cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.GroupKey, "group-key", "", "base64 group key (skips the API call)")
	cmd.Flags().BoolVar(&cfg.Secondary, "secondary", false, "derive from the group's secondary key")
	return cmd
}

func runComputeDeviceKey(cmd *cobra.Command, g *cmdutil.Globals, cfg computeDeviceKeyConfig) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	if err := enrollment.ValidateRegistrationID(cfg.RegistrationID); err != nil {
		return cmdutil.Errorf(err, "%v", err)
	}
	groupKey := cfg.GroupKey
	if groupKey == "" {
		c, err := g.Client()
		if err != nil {
			return err
		}
		m, err := c.GroupKeys(cmd.Context(), cfg.GroupID)
		if err != nil {
			return cmdutil.Fail(err, "enrollment group", cfg.GroupID, "get keys of")
		}
		if m.SymmetricKey == nil {
			return cmdutil.Errorf(nil, "enrollment group %q uses %s attestation, not symmetricKey", cfg.GroupID, m.Type)
		}
		groupKey = m.SymmetricKey.PrimaryKey
		if cfg.Secondary {
			groupKey = m.SymmetricKey.SecondaryKey
		}
	} else if cfg.Secondary {
		return cmdutil.Errorf(nil, "--secondary selects a key fetched from the API; with --group-key, pass the key you want")
	}
	key, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil || len(key) == 0 {
		return cmdutil.Errorf(err, "the group key is not valid base64")
	}
	deviceKey := base64.StdEncoding.EncodeToString(sas.DeriveDeviceKey(key, cfg.RegistrationID))
	return g.Printer(cmd.OutOrStdout()).Value(map[string]string{"enrollmentGroupId": cfg.GroupID, "registrationId": cfg.RegistrationID, "deviceKey": deviceKey}, deviceKey)
}
