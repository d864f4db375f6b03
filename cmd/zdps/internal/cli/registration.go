package cli

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

func newRegistrationCmd(g *globals) *cobra.Command {
	cmd := parent("registration", "Inspect and delete device registration records", "registrations")
	cmd.AddCommand(newRegistrationGetCmd(g), newRegistrationListCmd(g), newRegistrationDeleteCmd(g))
	return cmd
}

// registrationIDConfig is the configuration of `zdps registration get`.
type registrationIDConfig struct{ RegistrationID string }

func newRegistrationGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get REGISTRATION_ID",
		Short: "Show a device's registration record",
		Args:  exactArgs("REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := registrationIDConfig{RegistrationID: args[0]}
			c, err := g.ready()
			if err != nil {
				return err
			}
			r, err := c.GetRegistration(cmd.Context(), cfg.RegistrationID)
			if err != nil {
				return fail(err, "registration", cfg.RegistrationID, "get")
			}
			p := g.printer(cmd.OutOrStdout())
			if p.json {
				return p.printJSON(r)
			}
			code := ""
			if r.ErrorCode != 0 {
				code = strconv.Itoa(r.ErrorCode)
			}
			return p.details(
				"Registration ID", r.RegistrationID,
				"Status", r.Status,
				"Substatus", r.Substatus,
				"Assigned hub", r.AssignedHub,
				"Device ID", r.DeviceID,
				"Error code", code,
				"Error message", r.ErrorMessage,
				"ETag", r.ETag,
				"Created", when(r.CreatedDateTimeUTC),
				"Updated", when(r.LastUpdatedDateTimeUTC),
			)
		},
	}
}

// registrationListConfig is the configuration of `zdps registration list`.
type registrationListConfig struct {
	GroupID  string
	PageSize int
}

func newRegistrationListCmd(g *globals) *cobra.Command {
	var cfg registrationListConfig
	cmd := &cobra.Command{
		Use:     "list [--group GROUP_ID]",
		Aliases: []string{"ls"},
		Short:   "List registration records, all or those of one enrollment group",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.ready()
			if err != nil {
				return err
			}
			what := "registrations"
			if cfg.GroupID != "" {
				what = "registrations of enrollment group " + strconv.Quote(cfg.GroupID)
			}
			return printList(g.printer(cmd.OutOrStdout()), c.Registrations(cmd.Context(), cfg.GroupID, cfg.PageSize),
				func(err error) error { return failRegistrations(err, cfg.GroupID, what) },
				[]string{"REGISTRATION ID", "STATUS", "ASSIGNED HUB", "DEVICE ID", "SUBSTATUS", "UPDATED"},
				func(r *enrollment.RegistrationState) []string {
					return []string{r.RegistrationID, r.Status, r.AssignedHub, r.DeviceID, r.Substatus, when(r.LastUpdatedDateTimeUTC)}
				})
		},
	}
	cmd.Flags().StringVar(&cfg.GroupID, "group", "", "only the records of this enrollment group")
	cmd.Flags().IntVar(&cfg.PageSize, "page-size", 1000, "items per API call")
	return cmd
}

func failRegistrations(err error, group, what string) error {
	if group != "" {
		return fail(err, "enrollment group", group, "list registrations of")
	}
	return failList(err, what)
}

func newRegistrationDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, deleteSpec{
		use: "delete REGISTRATION_ID", short: "Delete a registration record (the device may register again)", resource: "registration",
		validate: enrollment.ValidateRegistrationID,
		del: func(ctx context.Context, c *client.Client, id, etag string) error {
			return c.DeleteRegistration(ctx, id, etag)
		},
	})
}
