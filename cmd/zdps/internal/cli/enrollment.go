package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

func newEnrollmentCmd(g *globals) *cobra.Command {
	cmd := parent("enrollment", "Manage individual enrollments", "enrollments")
	cmd.AddCommand(newEnrollmentCreateCmd(g), newEnrollmentGetCmd(g), newEnrollmentListCmd(g),
		newEnrollmentDeleteCmd(g), newEnrollmentKeysCmd(g), newImportCmd(g), newEnrollmentSetFirmwarePolicyCmd(g))
	return cmd
}

// enrollmentCreateConfig is the configuration of `zdps enrollment create`.
type enrollmentCreateConfig struct {
	RegistrationID string
	DeviceID       string
	Attestation    attestationFlags
	Allocation     allocationFlags
}

func newEnrollmentCreateCmd(g *globals) *cobra.Command {
	var cfg enrollmentCreateConfig
	cmd := &cobra.Command{
		Use:   "create REGISTRATION_ID --attestation symmetricKey|x509|tpm [flags]",
		Short: "Create an individual enrollment (fails if it exists)",
		Example: `  zdps enrollment create dev-001 --attestation symmetricKey
  zdps enrollment create dev-002 --attestation x509 --cert dev-002.pem --hub hub1.example.com
  zdps enrollment create dev-003 --attestation tpm --endorsement-key "$EK"`,
		Args: exactArgs("REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.RegistrationID = args[0]
			return runEnrollmentCreate(cmd, g, cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.DeviceID, "device-id", "", "device ID at the hub (default: the registration ID)")
	cfg.Attestation.register(cmd, true)
	cfg.Allocation.register(cmd)
	return cmd
}

func runEnrollmentCreate(cmd *cobra.Command, g *globals, cfg enrollmentCreateConfig) error {
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
	e := &enrollment.IndividualEnrollment{
		RegistrationID:             cfg.RegistrationID,
		DeviceID:                   cfg.DeviceID,
		Attestation:                att,
		IoTHubHostName:             cfg.Allocation.IoTHubHostName,
		IoTHubs:                    cfg.Allocation.Hubs,
		AllocationPolicy:           policy,
		CustomAllocationDefinition: webhook,
		ProvisioningStatus:         cfg.Allocation.status(),
	}
	// Validate here with the server's own rules: the message then names
	// the flag's field before anything is sent.
	if err := e.Validate(); err != nil {
		return userErrorf(err, "invalid enrollment: %v", err)
	}
	stripInfo(e.Attestation.X509)
	return createOne(cmd, g, "enrollment", e.RegistrationID,
		func(ctx context.Context, c *client.Client) (int, string, error) {
			res, err := c.BulkEnrollments(ctx, enrollment.BulkCreate, []*enrollment.IndividualEnrollment{e})
			if err != nil || len(res.Errors) == 0 {
				return 0, "", err
			}
			return res.Errors[0].ErrorCode, res.Errors[0].ErrorStatus, nil
		},
		(*client.Client).GetEnrollment, printEnrollment)
}

func printEnrollment(p printer, e *enrollment.IndividualEnrollment) error {
	if p.json {
		return p.printJSON(e)
	}
	typ, detail := describeAttestation(e.Attestation)
	var reg string
	if s := e.RegistrationState; s != nil {
		reg = strings.TrimSpace(s.Status + " " + s.AssignedHub)
	}
	return p.details(
		"Registration ID", e.RegistrationID,
		"Device ID", e.DeviceID,
		"Attestation", typ,
		"Certificate", detail,
		"Status", e.ProvisioningStatus,
		"Allocation policy", orDefault(e.AllocationPolicy, "(instance default)"),
		"IoT hub host name", e.IoTHubHostName,
		"IoT hubs", strings.Join(e.IoTHubs, ", "),
		"Registration", reg,
		"ETag", e.ETag,
		"Created", when(e.CreatedDateTimeUTC),
		"Updated", when(e.LastUpdatedDateTimeUTC),
	)
}

// enrollmentIDConfig is the configuration of the enrollment commands that
// take only an ID (get, keys).
type enrollmentIDConfig struct{ RegistrationID string }

func newEnrollmentGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get REGISTRATION_ID",
		Short: "Show an individual enrollment (without keys)",
		Args:  exactArgs("REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := enrollmentIDConfig{RegistrationID: args[0]}
			c, err := g.ready()
			if err != nil {
				return err
			}
			e, err := c.GetEnrollment(cmd.Context(), cfg.RegistrationID)
			if err != nil {
				return fail(err, "enrollment", cfg.RegistrationID, "get")
			}
			return printEnrollment(g.printer(cmd.OutOrStdout()), e)
		},
	}
}

// listConfig is the configuration of the list commands.
type listConfig struct{ PageSize int }

func newEnrollmentListCmd(g *globals) *cobra.Command {
	var cfg listConfig
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List every individual enrollment",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.ready()
			if err != nil {
				return err
			}
			return printList(g.printer(cmd.OutOrStdout()), c.Enrollments(cmd.Context(), cfg.PageSize),
				func(err error) error { return failList(err, "enrollments") },
				[]string{"REGISTRATION ID", "ATTESTATION", "STATUS", "DEVICE ID", "ALLOCATION", "HUBS", "REGISTRATION"},
				func(e *enrollment.IndividualEnrollment) []string {
					typ, _ := describeAttestation(e.Attestation)
					hubs := strings.Join(e.IoTHubs, ",")
					if e.IoTHubHostName != "" {
						hubs = e.IoTHubHostName
					}
					reg := ""
					if e.RegistrationState != nil {
						reg = e.RegistrationState.Status
					}
					return []string{e.RegistrationID, typ, e.ProvisioningStatus, e.DeviceID, e.AllocationPolicy, hubs, reg}
				})
		},
	}
	cmd.Flags().IntVar(&cfg.PageSize, "page-size", 1000, "items per API call")
	return cmd
}

// deleteConfig is the configuration of the delete commands.
type deleteConfig struct {
	ID   string
	ETag string
}

func newEnrollmentDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, deleteSpec{
		use: "delete REGISTRATION_ID", short: "Delete an individual enrollment", resource: "enrollment",
		del: func(ctx context.Context, c *client.Client, id, etag string) error {
			return c.DeleteEnrollment(ctx, id, etag)
		},
	})
}

func newEnrollmentKeysCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "keys REGISTRATION_ID",
		Short: "Show the attestation keys of an individual enrollment",
		Args:  exactArgs("REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := enrollmentIDConfig{RegistrationID: args[0]}
			c, err := g.ready()
			if err != nil {
				return err
			}
			m, err := c.EnrollmentKeys(cmd.Context(), cfg.RegistrationID)
			if err != nil {
				return fail(err, "enrollment", cfg.RegistrationID, "get keys of")
			}
			return printKeys(g.printer(cmd.OutOrStdout()), m)
		},
	}
}

func printKeys(p printer, m *enrollment.AttestationMechanism) error {
	if p.json {
		return p.printJSON(m)
	}
	switch {
	case m.SymmetricKey != nil:
		return p.details("Type", m.Type, "Primary key", m.SymmetricKey.PrimaryKey, "Secondary key", m.SymmetricKey.SecondaryKey)
	case m.TPM != nil:
		return p.details("Type", m.Type, "Endorsement key", m.TPM.EndorsementKey, "Storage root key", m.TPM.StorageRootKey)
	}
	typ, detail := describeAttestation(m)
	return p.details("Type", typ, "Certificate", orDefault(detail, "(no keys: X.509 attestation holds only certificates)"))
}

// ready checks the global flags and builds the client.
func (g *globals) ready() (*client.Client, error) {
	if err := g.checkOutput(); err != nil {
		return nil, err
	}
	return g.client()
}

// exactArgs is cobra.ExactArgs with the argument names in the message.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return userErrorf(nil, "%s needs %s (got %d argument(s); see --help)", cmd.CommandPath(), strings.Join(names, " "), len(args))
		}
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				return userErrorf(nil, "%s: %s is empty", cmd.CommandPath(), names[i])
			}
		}
		return nil
	}
}
