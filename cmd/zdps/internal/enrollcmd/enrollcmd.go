package enrollcmd

import (
	"context"
	"iter"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewEnrollmentCmd is `zdps enrollment`.
func NewEnrollmentCmd(g *cmdutil.Globals) *cobra.Command { return individualKind.command(g) }

// NewGroupCmd is `zdps group`.
func NewGroupCmd(g *cmdutil.Globals) *cobra.Command { return groupKind.command(g) }

// document is an individual enrollment or an enrollment group.
type document interface{ Validate() error }

// kind describes one of the two enrollment resources: its names, its API
// calls and where its fields are. The commands are written once over it.
type kind[T document] struct {
	use     string   // the parent command
	aliases []string // of the parent command
	noun    string   // in messages: "enrollment group"
	long    string   // in help, after "an": "individual enrollment"
	idArg   string   // "REGISTRATION_ID"
	idLabel string   // in details: "Registration ID"
	// individual: TPM attestation, client certificates, a device ID and a
	// registration state; otherwise CA references and signing certificates.
	individual bool

	createTypes, createExample string
	deleteNote                 string // after the delete command's Short
	firmwareExample            string

	get    func(*client.Client, context.Context, string) (T, error)
	keys   func(*client.Client, context.Context, string) (*enrollment.AttestationMechanism, error)
	list   func(*client.Client, context.Context, int) iter.Seq2[T, error]
	put    func(*client.Client, context.Context, T, string) (T, error)
	delete func(*client.Client, context.Context, string, string) error
	// create makes one with a one-item bulk create and answers the
	// item's error code and status, 0 when it was created.
	create func(*client.Client, context.Context, T) (int, string, error)
	newDoc func(id string) T
	fields func(T) fields
	// more are the kind's own subcommands.
	more []func(*cmdutil.Globals) *cobra.Command
}

// fields points at what enrollments and groups both hold; DeviceID and
// State are nil for a group.
type fields struct {
	ID       *string
	Spec     *enrollment.Spec
	Meta     *enrollment.Versioned
	DeviceID *string
	State    **enrollment.RegistrationState
}

var individualKind = &kind[*enrollment.IndividualEnrollment]{
	use: "enrollment", aliases: []string{"enrollments"}, noun: "enrollment", long: "individual enrollment",
	idArg: "REGISTRATION_ID", idLabel: "Registration ID", individual: true,
	createTypes: "symmetricKey|x509|tpm",
	createExample: `  zdps enrollment create dev-001 --attestation symmetricKey
  zdps enrollment create dev-002 --attestation x509 --cert dev-002.pem --hub hub1.example.com
  zdps enrollment create dev-003 --attestation tpm --endorsement-key "$EK"`,
	firmwareExample: `  zdps enrollment set-firmware-policy dev-42 --allow-fwid 1=sha256:<digest> --min-svn 1=3
  zdps enrollment set-firmware-policy dev-42 --clear`,
	get: (*client.Client).GetEnrollment, keys: (*client.Client).EnrollmentKeys, list: (*client.Client).Enrollments,
	put: (*client.Client).PutEnrollment, delete: (*client.Client).DeleteEnrollment,
	create: func(c *client.Client, ctx context.Context, e *enrollment.IndividualEnrollment) (int, string, error) {
		res, err := c.BulkEnrollments(ctx, enrollment.BulkCreate, []*enrollment.IndividualEnrollment{e})
		if err != nil || len(res.Errors) == 0 {
			return 0, "", err
		}
		return res.Errors[0].ErrorCode, res.Errors[0].ErrorStatus, nil
	},
	newDoc: func(id string) *enrollment.IndividualEnrollment {
		return &enrollment.IndividualEnrollment{RegistrationID: id}
	},
	fields: func(e *enrollment.IndividualEnrollment) fields {
		return fields{ID: &e.RegistrationID, Spec: &e.Spec, Meta: &e.Versioned, DeviceID: &e.DeviceID, State: &e.RegistrationState}
	},
	more: []func(*cmdutil.Globals) *cobra.Command{newImportCmd},
}

var groupKind = &kind[*enrollment.EnrollmentGroup]{
	use: "group", aliases: []string{"groups", "enrollment-group"}, noun: "enrollment group", long: "enrollment group",
	idArg: "GROUP_ID", idLabel: "Enrollment group ID",
	createTypes: "symmetricKey|x509",
	createExample: `  zdps group create line-1 --attestation symmetricKey
  zdps group create factory-ca --attestation x509 --cert factory-ca.pem
  zdps group create factory-ca --attestation x509 --ca-ref factory-root`,
	deleteNote: " (its registration records stay)",
	firmwareExample: `  zdps group set-firmware-policy factory-ca --vendor acme --model board-7 --forbid-flag debug \
      --allow-fwid 1=sha256:<v3 digest> --allow-fwid 1=sha256:<v4 digest> --min-svn 1=3
  zdps group set-firmware-policy factory-ca --file policy.json
  zdps group set-firmware-policy factory-ca --clear`,
	get: (*client.Client).GetGroup, keys: (*client.Client).GroupKeys, list: (*client.Client).Groups,
	put: (*client.Client).PutGroup, delete: (*client.Client).DeleteGroup,
	create: func(c *client.Client, ctx context.Context, grp *enrollment.EnrollmentGroup) (int, string, error) {
		res, err := c.BulkGroups(ctx, enrollment.BulkCreate, []*enrollment.EnrollmentGroup{grp})
		if err != nil || len(res.Errors) == 0 {
			return 0, "", err
		}
		return res.Errors[0].ErrorCode, res.Errors[0].ErrorStatus, nil
	},
	newDoc: func(id string) *enrollment.EnrollmentGroup { return &enrollment.EnrollmentGroup{EnrollmentGroupID: id} },
	fields: func(grp *enrollment.EnrollmentGroup) fields {
		return fields{ID: &grp.EnrollmentGroupID, Spec: &grp.Spec, Meta: &grp.Versioned}
	},
	more: []func(*cmdutil.Globals) *cobra.Command{newComputeDeviceKeyCmd},
}

func (k *kind[T]) command(g *cmdutil.Globals) *cobra.Command {
	cmd := cmdutil.Parent(k.use, "Manage "+k.long+"s", k.aliases...)
	cmd.AddCommand(k.createCmd(g), k.getCmd(g), k.listCmd(g), k.deleteCmd(g), k.keysCmd(g))
	for _, more := range k.more {
		cmd.AddCommand(more(g))
	}
	cmd.AddCommand(k.setFirmwarePolicyCmd(g))
	return cmd
}

// createConfig is the configuration of `zdps enrollment create` and
// `zdps group create`.
type createConfig struct {
	ID          string
	DeviceID    string // individual enrollments only
	Attestation attestationFlags
	Allocation  allocationFlags
}

func (k *kind[T]) createCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg createConfig
	cmd := &cobra.Command{
		Use:     "create " + k.idArg + " --attestation " + k.createTypes + " [flags]",
		Short:   "Create an " + k.long + " (fails if it exists)",
		Example: k.createExample,
		Args:    cmdutil.ExactArgs(k.idArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.ID = args[0]
			return k.runCreate(cmd, g, cfg)
		},
	}
	if k.individual {
		cmd.Flags().StringVar(&cfg.DeviceID, "device-id", "", "device ID at the hub (default: the registration ID)")
	}
	cfg.Attestation.register(cmd, k.individual)
	cfg.Allocation.register(cmd)
	return cmd
}

// runCreate creates with a one-item bulk create, not a PUT (a PUT would
// silently replace an existing one, and "create" must not), reads it back
// and prints it.
func (k *kind[T]) runCreate(cmd *cobra.Command, g *cmdutil.Globals, cfg createConfig) error {
	if err := g.CheckOutput(); err != nil {
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
	d := k.newDoc(cfg.ID)
	f := k.fields(d)
	if f.DeviceID != nil {
		*f.DeviceID = cfg.DeviceID
	}
	f.Spec.Attestation, f.Spec.IoTHubHostName, f.Spec.IoTHubs = att, cfg.Allocation.IoTHubHostName, cfg.Allocation.Hubs
	f.Spec.AllocationPolicy, f.Spec.CustomAllocationDefinition, f.Spec.ProvisioningStatus = policy, webhook, cfg.Allocation.status()
	if cfg.Allocation.IoTEdge {
		f.Spec.Capabilities = &enrollment.DeviceCapabilities{IoTEdge: true}
	}
	f.Spec.Site = cfg.Allocation.Site
	// Validate here with the server's own rules: the message then names
	// the flag's field before anything is sent.
	if err := d.Validate(); err != nil {
		return cmdutil.Errorf(err, "invalid %s: %v", k.noun, err)
	}
	stripInfo(att.X509)
	c, err := g.Client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	code, status, err := k.create(c, ctx, d)
	switch {
	case err != nil:
		return cmdutil.Fail(err, k.noun, cfg.ID, "create")
	case code != 0:
		return bulkItemError(k.noun, cfg.ID, code, status)
	}
	got, err := k.get(c, ctx, cfg.ID)
	if err != nil {
		return cmdutil.Fail(err, k.noun, cfg.ID, "read back")
	}
	return k.print(g.Printer(cmd.OutOrStdout()), got)
}

func (k *kind[T]) print(p cmdutil.Printer, d T) error {
	if p.JSON {
		return p.PrintJSON(d)
	}
	f := k.fields(d)
	typ, detail := describeAttestation(f.Spec.Attestation)
	var deviceID, reg string // empty for groups: Details leaves them out
	if f.DeviceID != nil {
		deviceID = *f.DeviceID
	}
	if s := registrationState(f); s != nil {
		reg = strings.TrimSpace(s.Status + " " + s.AssignedHub)
	}
	return p.Details(
		k.idLabel, *f.ID,
		"Device ID", deviceID,
		"Attestation", typ,
		"Certificate", detail,
		"Status", f.Spec.ProvisioningStatus,
		"Allocation policy", cmdutil.OrDefault(f.Spec.AllocationPolicy, "(instance default)"),
		"IoT hub host name", f.Spec.IoTHubHostName,
		"IoT hubs", strings.Join(f.Spec.IoTHubs, ", "),
		"Registration", reg,
		"ETag", f.Meta.ETag,
		"Created", cmdutil.When(f.Meta.CreatedDateTimeUTC),
		"Updated", cmdutil.When(f.Meta.LastUpdatedDateTimeUTC),
	)
}

func registrationState(f fields) *enrollment.RegistrationState {
	if f.State == nil {
		return nil
	}
	return *f.State
}

func (k *kind[T]) getCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[T]{
		Use: "get " + k.idArg, Short: "Show an " + k.long + " (without keys)", Resource: k.noun, Action: "get",
		Get: k.get, Print: k.print,
	})
}

func (k *kind[T]) listCmd(g *cmdutil.Globals) *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List every " + k.long,
		Args:    cobra.NoArgs,
		RunE: g.Run(func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
			// Groups have no device ID and no registration column.
			columns := func(id, typ, status, deviceID, policy, hubs, reg string) []string {
				if !k.individual {
					return []string{id, typ, status, policy, hubs}
				}
				return []string{id, typ, status, deviceID, policy, hubs, reg}
			}
			return cmdutil.PrintList(p, k.list(c, ctx, pageSize),
				func(err error) error { return cmdutil.FailList(err, k.noun+"s") },
				columns(strings.ReplaceAll(k.idArg, "_", " "), "ATTESTATION", "STATUS", "DEVICE ID", "ALLOCATION", "HUBS", "REGISTRATION"),
				func(d T) []string {
					f := k.fields(d)
					typ, _ := describeAttestation(f.Spec.Attestation)
					hubs := strings.Join(f.Spec.IoTHubs, ",")
					if f.Spec.IoTHubHostName != "" {
						hubs = f.Spec.IoTHubHostName
					}
					var deviceID, reg string
					if f.DeviceID != nil {
						deviceID = *f.DeviceID
					}
					if s := registrationState(f); s != nil {
						reg = s.Status
					}
					return columns(*f.ID, typ, f.Spec.ProvisioningStatus, deviceID, f.Spec.AllocationPolicy, hubs, reg)
				})
		}),
	}
	cmdutil.PageSizeFlag(cmd.Flags(), &pageSize)
	return cmd
}

func (k *kind[T]) deleteCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewDeleteCmd(g, cmdutil.DeleteSpec{
		Use: "delete " + k.idArg, Short: "Delete an " + k.long + k.deleteNote, Resource: k.noun,
		Delete: k.delete,
	})
}

func (k *kind[T]) keysCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*enrollment.AttestationMechanism]{
		Use: "keys " + k.idArg, Short: "Show the attestation keys of an " + k.long, Resource: k.noun, Action: "get keys of",
		Get: k.keys, Print: printKeys,
	})
}

func printKeys(p cmdutil.Printer, m *enrollment.AttestationMechanism) error {
	if p.JSON {
		return p.PrintJSON(m)
	}
	switch {
	case m.SymmetricKey != nil:
		return p.Details("Type", m.Type, "Primary key", m.SymmetricKey.PrimaryKey, "Secondary key", m.SymmetricKey.SecondaryKey)
	case m.TPM != nil:
		return p.Details("Type", m.Type, "Endorsement key", m.TPM.EndorsementKey, "Storage root key", m.TPM.StorageRootKey)
	}
	typ, detail := describeAttestation(m)
	return p.Details("Type", typ, "Certificate", cmdutil.OrDefault(detail, "(no keys: X.509 attestation holds only certificates)"))
}
