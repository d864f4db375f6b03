package hubcmd

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewRegistrationCmd is `zdps registration`.
func NewRegistrationCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "registration", "Inspect and delete device registration records", []string{"registrations"}, newRegistrationGetCmd, newRegistrationListCmd, newRegistrationDeleteCmd)
}

func newRegistrationGetCmd(g *cmdutil.Globals) *cobra.Command {
	cmd := cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*enrollment.RegistrationState]{
		Use: "get REGISTRATION_ID", Short: "Show a device's registration record (with the site and gateway that registered it, if any)", Resource: "registration", Action: "get",
		Get: (*client.Client).GetRegistration, Print: printRegistration,
	})
	cmd.Aliases = []string{"show"}
	return cmd
}

func printRegistration(p cmdutil.Printer, r *enrollment.RegistrationState) error {
	if p.JSON {
		return p.PrintJSON(r)
	}
	code := ""
	if r.ErrorCode != 0 {
		code = strconv.Itoa(r.ErrorCode)
	}
	return p.Details(
		"Registration ID", r.RegistrationID,
		"Status", r.Status,
		"Substatus", r.Substatus,
		"Assigned hub", r.AssignedHub,
		"Device ID", r.DeviceID,
		"Error code", code,
		"Error message", r.ErrorMessage,
		"Site", r.Site,
		"Gateway", r.Gateway,
		"ETag", r.ETag,
		"Created", cmdutil.When(r.CreatedDateTimeUTC),
		"Updated", cmdutil.When(r.LastUpdatedDateTimeUTC),
	)
}

// registrationListConfig is the configuration of `zdps registration list`.
type registrationListConfig struct {
	GroupID  string
	PageSize int
}

func newRegistrationListCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg registrationListConfig
	cmd := &cobra.Command{
		Use:     "list [--group GROUP_ID]",
		Aliases: []string{"ls"},
		Short:   "List registration records, all or those of one enrollment group",
		Args:    cobra.NoArgs,
		RunE: g.Run(func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
			what := "registrations"
			if cfg.GroupID != "" {
				what = "registrations of enrollment group " + strconv.Quote(cfg.GroupID)
			}
			return cmdutil.PrintList(p, c.Registrations(ctx, cfg.GroupID, cfg.PageSize),
				func(err error) error { return failRegistrations(err, cfg.GroupID, what) },
				[]string{"REGISTRATION ID", "STATUS", "ASSIGNED HUB", "DEVICE ID", "SUBSTATUS", "UPDATED"},
				func(r *enrollment.RegistrationState) []string {
					return []string{r.RegistrationID, r.Status, r.AssignedHub, r.DeviceID, r.Substatus, cmdutil.When(r.LastUpdatedDateTimeUTC)}
				})
		}),
	}
	cmd.Flags().StringVar(&cfg.GroupID, "group", "", "only the records of this enrollment group")
	cmdutil.PageSizeFlag(cmd.Flags(), &cfg.PageSize)
	return cmd
}

func failRegistrations(err error, group, what string) error {
	if group != "" {
		return cmdutil.Fail(err, "enrollment group", group, "list registrations of")
	}
	return cmdutil.FailList(err, what)
}

func newRegistrationDeleteCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewDeleteCmd(g, cmdutil.DeleteSpec{
		Use: "delete REGISTRATION_ID", Short: "Delete a registration record (the device may register again)", Resource: "registration",
		Validate: enrollment.ValidateRegistrationID,
		Delete:   (*client.Client).DeleteRegistration,
	})
}
