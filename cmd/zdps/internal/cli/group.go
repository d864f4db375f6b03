package cli

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/spf13/cobra"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

func newGroupCmd(g *globals) *cobra.Command {
	cmd := parent("group", "Manage enrollment groups", "groups", "enrollment-group")
	cmd.AddCommand(newGroupCreateCmd(g), newGroupGetCmd(g), newGroupListCmd(g), newGroupDeleteCmd(g),
		newGroupKeysCmd(g), newComputeDeviceKeyCmd(g), newGroupSetFirmwarePolicyCmd(g))
	return cmd
}

// groupCreateConfig is the configuration of `zdps group create`.
type groupCreateConfig struct {
	GroupID     string
	Attestation attestationFlags
	Allocation  allocationFlags
}

func newGroupCreateCmd(g *globals) *cobra.Command {
	var cfg groupCreateConfig
	cmd := &cobra.Command{
		Use:   "create GROUP_ID --attestation symmetricKey|x509 [flags]",
		Short: "Create an enrollment group (fails if it exists)",
		Example: `  zdps group create line-1 --attestation symmetricKey
  zdps group create factory-ca --attestation x509 --cert factory-ca.pem
  zdps group create factory-ca --attestation x509 --ca-ref factory-root`,
		Args: exactArgs("GROUP_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.GroupID = args[0]
			return runGroupCreate(cmd, g, cfg)
		},
	}
	cfg.Attestation.register(cmd, false)
	cfg.Allocation.register(cmd)
	return cmd
}

func runGroupCreate(cmd *cobra.Command, g *globals, cfg groupCreateConfig) error {
	if err := g.checkOutput(); err != nil {
		return err
	}
	att, err := cfg.Attestation.build()
	if err != nil {
		return err
	}
	policy, webhook, err := cfg.Allocation.policy()
	if err != nil {
		return err
	}
	grp := &enrollment.EnrollmentGroup{
		EnrollmentGroupID:          cfg.GroupID,
		Attestation:                att,
		IoTHubHostName:             cfg.Allocation.IoTHubHostName,
		IoTHubs:                    cfg.Allocation.Hubs,
		AllocationPolicy:           policy,
		CustomAllocationDefinition: webhook,
		ProvisioningStatus:         cfg.Allocation.status(),
	}
	if err := grp.Validate(); err != nil {
		return userErrorf(err, "invalid enrollment group: %v", err)
	}
	stripInfo(grp.Attestation.X509)
	return createOne(cmd, g, "enrollment group", grp.EnrollmentGroupID,
		func(ctx context.Context, c *client.Client) (int, string, error) {
			res, err := c.BulkGroups(ctx, enrollment.BulkCreate, []*enrollment.EnrollmentGroup{grp})
			if err != nil || len(res.Errors) == 0 {
				return 0, "", err
			}
			return res.Errors[0].ErrorCode, res.Errors[0].ErrorStatus, nil
		},
		(*client.Client).GetGroup, printGroup)
}

func printGroup(p printer, grp *enrollment.EnrollmentGroup) error {
	if p.json {
		return p.printJSON(grp)
	}
	typ, detail := describeAttestation(grp.Attestation)
	return p.details(
		"Enrollment group ID", grp.EnrollmentGroupID,
		"Attestation", typ,
		"Certificate", detail,
		"Status", grp.ProvisioningStatus,
		"Allocation policy", orDefault(grp.AllocationPolicy, "(instance default)"),
		"IoT hub host name", grp.IoTHubHostName,
		"IoT hubs", strings.Join(grp.IoTHubs, ", "),
		"ETag", grp.ETag,
		"Created", when(grp.CreatedDateTimeUTC),
		"Updated", when(grp.LastUpdatedDateTimeUTC),
	)
}

// groupIDConfig is the configuration of the group commands that take only
// an ID (get, keys).
type groupIDConfig struct{ GroupID string }

func newGroupGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get GROUP_ID",
		Short: "Show an enrollment group (without keys)",
		Args:  exactArgs("GROUP_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := groupIDConfig{GroupID: args[0]}
			c, err := g.ready()
			if err != nil {
				return err
			}
			grp, err := c.GetGroup(cmd.Context(), cfg.GroupID)
			if err != nil {
				return fail(err, "enrollment group", cfg.GroupID, "get")
			}
			return printGroup(g.printer(cmd.OutOrStdout()), grp)
		},
	}
}

func newGroupListCmd(g *globals) *cobra.Command {
	var cfg listConfig
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List every enrollment group",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.ready()
			if err != nil {
				return err
			}
			return printList(g.printer(cmd.OutOrStdout()), c.Groups(cmd.Context(), cfg.PageSize),
				func(err error) error { return failList(err, "enrollment groups") },
				[]string{"GROUP ID", "ATTESTATION", "STATUS", "ALLOCATION", "HUBS"},
				func(grp *enrollment.EnrollmentGroup) []string {
					typ, _ := describeAttestation(grp.Attestation)
					hubs := strings.Join(grp.IoTHubs, ",")
					if grp.IoTHubHostName != "" {
						hubs = grp.IoTHubHostName
					}
					return []string{grp.EnrollmentGroupID, typ, grp.ProvisioningStatus, grp.AllocationPolicy, hubs}
				})
		},
	}
	cmd.Flags().IntVar(&cfg.PageSize, "page-size", 1000, "items per API call")
	return cmd
}

func newGroupDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, deleteSpec{
		use: "delete GROUP_ID", short: "Delete an enrollment group (its registration records stay)", resource: "enrollment group",
		del: func(ctx context.Context, c *client.Client, id, etag string) error {
			return c.DeleteGroup(ctx, id, etag)
		},
	})
}

func newGroupKeysCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "keys GROUP_ID",
		Short: "Show the attestation keys of an enrollment group",
		Args:  exactArgs("GROUP_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := groupIDConfig{GroupID: args[0]}
			c, err := g.ready()
			if err != nil {
				return err
			}
			m, err := c.GroupKeys(cmd.Context(), cfg.GroupID)
			if err != nil {
				return fail(err, "enrollment group", cfg.GroupID, "get keys of")
			}
			return printKeys(g.printer(cmd.OutOrStdout()), m)
		},
	}
}

// computeDeviceKeyConfig is the configuration of `zdps group
// compute-device-key`.
type computeDeviceKeyConfig struct {
	GroupID        string
	RegistrationID string
	GroupKey       string
	Secondary      bool
}

func newComputeDeviceKeyCmd(g *globals) *cobra.Command {
	var cfg computeDeviceKeyConfig
	cmd := &cobra.Command{
		Use:   "compute-device-key GROUP_ID REGISTRATION_ID",
		Short: "Derive a device's symmetric key from its group's key",
		Long: `Derive the key a device of a symmetric-key enrollment group signs with:
base64(HMAC-SHA256(group key, registration ID)). The group key is fetched through
the API, or given with --group-key to work offline.`,
		Args: exactArgs("GROUP_ID", "REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.GroupID, cfg.RegistrationID = args[0], args[1]
			return runComputeDeviceKey(cmd, g, cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.GroupKey, "group-key", "", "base64 group key (skips the API call)")
	cmd.Flags().BoolVar(&cfg.Secondary, "secondary", false, "derive from the group's secondary key")
	return cmd
}

func runComputeDeviceKey(cmd *cobra.Command, g *globals, cfg computeDeviceKeyConfig) error {
	if err := g.checkOutput(); err != nil {
		return err
	}
	if err := enrollment.ValidateRegistrationID(cfg.RegistrationID); err != nil {
		return userErrorf(err, "%v", err)
	}
	groupKey := cfg.GroupKey
	if groupKey == "" {
		c, err := g.client()
		if err != nil {
			return err
		}
		m, err := c.GroupKeys(cmd.Context(), cfg.GroupID)
		if err != nil {
			return fail(err, "enrollment group", cfg.GroupID, "get keys of")
		}
		if m.SymmetricKey == nil {
			return userErrorf(nil, "enrollment group %q uses %s attestation, not symmetricKey", cfg.GroupID, m.Type)
		}
		groupKey = m.SymmetricKey.PrimaryKey
		if cfg.Secondary {
			groupKey = m.SymmetricKey.SecondaryKey
		}
	} else if cfg.Secondary {
		return userErrorf(nil, "--secondary selects a key fetched from the API; with --group-key, pass the key you want")
	}
	key, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil || len(key) == 0 {
		return userErrorf(err, "the group key is not valid base64")
	}
	deviceKey := base64.StdEncoding.EncodeToString(sas.DeriveDeviceKey(key, cfg.RegistrationID))
	p := g.printer(cmd.OutOrStdout())
	if p.json {
		return p.printJSON(map[string]string{"enrollmentGroupId": cfg.GroupID, "registrationId": cfg.RegistrationID, "deviceKey": deviceKey})
	}
	_, err = cmd.OutOrStdout().Write([]byte(deviceKey + "\n"))
	return err
}
