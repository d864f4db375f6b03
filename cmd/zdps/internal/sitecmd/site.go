package sitecmd

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewSiteCmd is `zdps site`.
func NewSiteCmd(g *cmdutil.Globals) *cobra.Command {
	cmd := cmdutil.Parent("site", "Manage the sites of edge gateways and assign enrollments to them", "sites")
	cmd.AddCommand(newCreateCmd(g), newListCmd(g), newShowCmd(g), newStatusCmd(g), newDeleteCmd(g),
		newAssignCmd(g, true), newAssignCmd(g, false))
	return cmd
}

func validName(name string) error {
	if err := enrollment.ValidateSiteName(name); err != nil {
		return cmdutil.Errorf(err, "invalid site name %q: %v", name, err)
	}
	return nil
}

func newCreateCmd(g *cmdutil.Globals) *cobra.Command {
	var hubs []string
	var update bool
	cmd := &cobra.Command{
		Use:   "create NAME --hub HOST_NAME... [--update]",
		Short: "Create a site with the hubs its devices are assigned to (fails if it exists, unless --update)",
		Example: `  zdps site create plant-1 --hub hub-plant1.example.com
  zdps site create plant-1 --hub hub-a.example.com --hub hub-b.example.com --update`,
		Args: cmdutil.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := validName(name); err != nil {
				return err
			}
			s := &enrollment.Site{Name: name, Hubs: hubs}
			if err := s.Validate(); err != nil {
				return cmdutil.Errorf(err, "invalid site: %v", err)
			}
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				var got *enrollment.Site
				var err error
				if update {
					got, err = c.PutSite(ctx, s, "")
				} else {
					got, err = c.CreateSite(ctx, s)
				}
				if errors.Is(err, client.ErrConflict) {
					return cmdutil.Errorf(err, "site %q already exists (add --update to replace its hubs)", name)
				}
				if err != nil {
					return cmdutil.Fail(err, "site", name, "create")
				}
				return printSites(p, got)
			})
		},
	}
	cmd.Flags().StringSliceVar(&hubs, "hub", nil, "host name of a hub of the site (repeat or comma-separate)")
	cmd.Flags().BoolVar(&update, "update", false, "replace the hubs of an existing site")
	return cmd
}

func printSites(p cmdutil.Printer, sites ...*enrollment.Site) error {
	if p.JSON {
		return cmdutil.PrintItems(p, sites)
	}
	t := p.Table("NAME", "HUBS", "GATEWAYS")
	for _, s := range sites {
		t.Row(s.Name, strings.Join(s.Hubs, ","), strconv.Itoa(len(s.Gateways)))
	}
	return t.Flush()
}

func newListCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewListAllCmd(g, cmdutil.ListAllSpec[*enrollment.Site]{
		Short: "List the sites with their hubs and how many gateways reported", What: "sites",
		List: cmdutil.All((*client.Client).Sites), Print: printSites,
	})
}

func newShowCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*enrollment.Site]{
		Use: "show NAME", Short: "Show a site", Resource: "site", Action: "get",
		Get: (*client.Client).GetSite, Print: func(p cmdutil.Printer, s *enrollment.Site) error {
			if p.JSON {
				return p.PrintJSON(s)
			}
			return p.Details("Name", s.Name, "Hubs", strings.Join(s.Hubs, ", "), "Gateways", strconv.Itoa(len(s.Gateways)),
				"ETag", s.ETag, "Created", cmdutil.When(s.CreatedDateTimeUTC), "Updated", cmdutil.When(s.LastUpdatedDateTimeUTC))
		},
	})
}

// newStatusCmd is `zdps site status NAME`: each gateway's last sync,
// backlog and delegated CA expiry.
func newStatusCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*enrollment.Site]{
		Use: "status NAME", Short: "Show each gateway of a site: last sync, backlog, delegated CA expiry", Resource: "site", Action: "get",
		Example: `  zdps site status plant-1`,
		Get:     (*client.Client).GetSite, Print: printStatus,
	})
}

func printStatus(p cmdutil.Printer, s *enrollment.Site) error {
	if p.JSON {
		return cmdutil.PrintItems(p, s.Gateways)
	}
	t := p.Table("GATEWAY", "LAST SYNC", "AGO", "BACKLOG", "CA SERIAL", "CA EXPIRES", "IN")
	now := time.Now()
	for _, gw := range s.Gateways {
		ago, in := "", ""
		if gw.LastSync != nil {
			ago = now.Sub(*gw.LastSync).Round(time.Second).String()
		}
		if gw.CANotAfter != nil {
			in = gw.CANotAfter.Sub(now).Round(time.Minute).String()
			if gw.CANotAfter.Before(now) {
				in = "EXPIRED"
			}
		}
		t.Row(gw.RegistrationID, cmdutil.When(gw.LastSync), ago, strconv.Itoa(gw.Backlog), gw.CASerial, cmdutil.When(gw.CANotAfter), in)
	}
	return t.Flush()
}

func newDeleteCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewDeleteCmd(g, cmdutil.DeleteSpec{
		Use: "delete NAME", Short: "Delete a site (its gateways are refused from then on; enrollments keep naming it until reassigned)",
		Resource: "site", Validate: func(s string) error { return enrollment.ValidateSiteName(s) },
		Delete: (*client.Client).DeleteSite,
	})
}

// newAssignCmd is `zdps site assign SITE --enrollment ID | --group ID`
// and `zdps site unassign --enrollment ID | --group ID`: a
// read-modify-write with If-Match of the enrollment's site field (the
// service API keeps its keys).
func newAssignCmd(g *cmdutil.Globals, assign bool) *cobra.Command {
	var enrollmentID, groupID string
	use, short, args := "assign SITE --enrollment ID | --group ID", "Assign an individual enrollment or a group to a site (its gateways receive it)", cmdutil.ExactArgs("SITE")
	if !assign {
		use, short, args = "unassign --enrollment ID | --group ID", "Take an individual enrollment or a group off its site (its gateways delete it)", cobra.NoArgs
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Example: `  zdps site assign plant-1 --enrollment sensor-17
  zdps site assign plant-1 --group line-3
  zdps site unassign --group line-3`,
		Args: args,
		RunE: func(cmd *cobra.Command, a []string) error {
			site := ""
			if assign {
				site = a[0]
				if err := validName(site); err != nil {
					return err
				}
			}
			if (enrollmentID == "") == (groupID == "") {
				return cmdutil.Errorf(nil, "give --enrollment ID or --group ID (one)")
			}
			return g.Call(cmd, a, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				if assign {
					if _, err := c.GetSite(ctx, site); err != nil {
						return cmdutil.Fail(err, "site", site, "assign to")
					}
				}
				if enrollmentID != "" {
					e, err := c.GetEnrollment(ctx, enrollmentID)
					if err != nil {
						return cmdutil.Fail(err, "enrollment", enrollmentID, "assign")
					}
					e.Site = site
					e.RegistrationState = nil
					got, err := c.PutEnrollment(ctx, e, e.ETag)
					if err != nil {
						return cmdutil.Fail(err, "enrollment", enrollmentID, "assign")
					}
					return p.Value(got, "enrollment \""+got.RegistrationID+"\" site: "+cmdutil.OrDefault(got.Site, "(none)"))
				}
				gr, err := c.GetGroup(ctx, groupID)
				if err != nil {
					return cmdutil.Fail(err, "enrollment group", groupID, "assign")
				}
				gr.Site = site
				got, err := c.PutGroup(ctx, gr, gr.ETag)
				if err != nil {
					return cmdutil.Fail(err, "enrollment group", groupID, "assign")
				}
				return p.Value(got, "group \""+got.EnrollmentGroupID+"\" site: "+cmdutil.OrDefault(got.Site, "(none)"))
			})
		},
	}
	cmd.Flags().StringVar(&enrollmentID, "enrollment", "", "registration ID of an individual enrollment")
	cmd.Flags().StringVar(&groupID, "group", "", "ID of an enrollment group")
	return cmd
}
