package cli

import (
	"strconv"

	"github.com/spf13/cobra"
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
			p := g.printer(cmd.OutOrStdout())
			if p.json {
				l := &jsonList{w: p.w}
				for r, err := range c.Registrations(cmd.Context(), cfg.GroupID, cfg.PageSize) {
					if err != nil {
						return failRegistrations(err, cfg.GroupID, what)
					}
					if err := l.add(r); err != nil {
						return err
					}
				}
				return l.end()
			}
			t := p.table("REGISTRATION ID", "STATUS", "ASSIGNED HUB", "DEVICE ID", "SUBSTATUS", "UPDATED")
			for r, err := range c.Registrations(cmd.Context(), cfg.GroupID, cfg.PageSize) {
				if err != nil {
					return failRegistrations(err, cfg.GroupID, what)
				}
				t.row(r.RegistrationID, r.Status, r.AssignedHub, r.DeviceID, r.Substatus, when(r.LastUpdatedDateTimeUTC))
			}
			return t.flush()
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
	var cfg deleteConfig
	cmd := &cobra.Command{
		Use:     "delete REGISTRATION_ID",
		Aliases: []string{"rm"},
		Short:   "Delete a registration record (the device may register again)",
		Args:    exactArgs("REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.ID = args[0]
			if err := enrollment.ValidateRegistrationID(cfg.ID); err != nil {
				return userErrorf(err, "%v", err)
			}
			c, err := g.ready()
			if err != nil {
				return err
			}
			if err := c.DeleteRegistration(cmd.Context(), cfg.ID, cfg.ETag); err != nil {
				return fail(err, "registration", cfg.ID, "delete")
			}
			return g.deleted(cmd, "registration", cfg.ID)
		},
	}
	cmd.Flags().StringVar(&cfg.ETag, "etag", "", "delete only if the record's etag still is this one")
	return cmd
}
