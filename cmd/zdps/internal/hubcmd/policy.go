package hubcmd

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewPolicyCmd is `zdps policy`.
func NewPolicyCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "policy", "Manage shared access policies of the service API", []string{"policies"}, newPolicyCreateCmd, newPolicyListCmd, newPolicyGetCmd, newPolicyDeleteCmd, newPolicyKeysCmd, newPolicyConnectionStringCmd)
}

// policyCreateConfig is the configuration of `zdps policy create`.
type policyCreateConfig struct {
	KeyName string
	Rights  string
}

func newPolicyCreateCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg policyCreateConfig
	cmd := &cobra.Command{
		Use:     "create NAME --rights RIGHT[,RIGHT...]",
		Short:   "Create a shared access policy with generated keys",
		Example: `  zdps policy create factory-line --rights EnrollmentRead,EnrollmentWrite`,
		Args:    cmdutil.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.KeyName = args[0]
			p := &enrollment.SharedAccessPolicy{KeyName: cfg.KeyName, Rights: cfg.Rights}
			if err := enrollment.ValidatePolicyName(p.KeyName); err != nil {
				return cmdutil.Errorf(err, "invalid policy: %v", err)
			}
			rights, err := enrollment.NormalizeRights(p.Rights)
			if err != nil {
				return cmdutil.Errorf(err, "invalid policy: %v", err)
			}
			p.Rights = rights
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, out cmdutil.Printer, _ []string) error {
				// Create-only (If-None-Match: *): never replaces an existing
				// policy's rights and keys, even when two admins race.
				got, err := c.CreatePolicy(ctx, p)
				if errors.Is(err, client.ErrConflict) {
					return cmdutil.Errorf(err, "policy %q already exists", cfg.KeyName)
				}
				if err != nil {
					return cmdutil.Fail(err, "policy", cfg.KeyName, "create")
				}
				return printPolicies(out, got)
			})
		},
	}
	cmd.Flags().StringVar(&cfg.Rights, "rights", "", "comma-separated rights: "+joinRights())
	_ = cmd.MarkFlagRequired("rights")
	return cmd
}

func joinRights() string {
	s := ""
	for i, r := range enrollment.AllRights {
		if i > 0 {
			s += ", "
		}
		s += r
	}
	return s
}

func printPolicies(p cmdutil.Printer, ps ...*enrollment.SharedAccessPolicy) error {
	if p.JSON {
		return cmdutil.PrintItems(p, ps)
	}
	t := p.Table("NAME", "RIGHTS")
	for _, pol := range ps {
		t.Row(pol.KeyName, pol.Rights)
	}
	return t.Flush()
}

func newPolicyListCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewListAllCmd(g, cmdutil.ListAllSpec[*enrollment.SharedAccessPolicy]{
		Short: "List shared access policies (without keys)", What: "policies",
		List: (*client.Client).ListPolicies, Print: printPolicies,
	})
}

func newPolicyGetCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*enrollment.SharedAccessPolicy]{
		Use: "get NAME", Short: "Show a shared access policy (without keys)", Resource: "policy", Action: "get",
		Get:   (*client.Client).GetPolicy,
		Print: func(p cmdutil.Printer, pol *enrollment.SharedAccessPolicy) error { return printPolicies(p, pol) },
	})
}

func newPolicyDeleteCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewDeleteCmd(g, cmdutil.DeleteSpec{
		Use: "delete NAME", Short: "Delete a shared access policy; its connection strings stop working", Resource: "policy",
		Delete: (*client.Client).DeletePolicy,
	})
}

func newPolicyKeysCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*enrollment.SharedAccessPolicy]{
		Use: "keys NAME", Short: "Show the keys of a shared access policy", Resource: "policy", Action: "get keys of",
		Get: (*client.Client).PolicyKeys,
		Print: func(p cmdutil.Printer, pol *enrollment.SharedAccessPolicy) error {
			if p.JSON {
				return p.PrintJSON(pol)
			}
			return p.Details("Name", pol.KeyName, "Rights", pol.Rights, "Primary key", pol.PrimaryKey, "Secondary key", pol.SecondaryKey)
		},
	})
}

// policyConnectionStringConfig is the configuration of `zdps policy
// connection-string`.
type policyConnectionStringConfig struct {
	KeyName   string
	Secondary bool
}

func newPolicyConnectionStringCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg policyConnectionStringConfig
	cmd := &cobra.Command{
		Use:   "connection-string NAME",
		Short: "Print an Azure-format connection string for a policy",
		Long: `Print HostName=...;SharedAccessKeyName=NAME;SharedAccessKey=... for the policy, with
the host name of the current connection. Hand it to a tool or a person who should
have exactly that policy's rights.`,
		Args: cmdutil.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.KeyName = args[0]
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				pol, err := c.PolicyKeys(ctx, cfg.KeyName)
				if err != nil {
					return cmdutil.Fail(err, "policy", cfg.KeyName, "get keys of")
				}
				key := pol.PrimaryKey
				if cfg.Secondary {
					key = pol.SecondaryKey
				}
				cs := client.ConnectionString{HostName: c.HostName(), SharedAccessKeyName: pol.KeyName, SharedAccessKey: key}
				return p.Value(map[string]string{"connectionString": cs.String()}, cs.String())
			})
		},
	}
	cmd.Flags().BoolVar(&cfg.Secondary, "secondary", false, "use the policy's secondary key")
	return cmd
}
