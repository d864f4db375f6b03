package secopscmd

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/dps"
)

// NewAlertCmd is `zdps alert`.
func NewAlertCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "alert", "List, show and acknowledge the anomaly rules' alerts", []string{"alerts"}, newAlertListCmd, newAlertShowCmd, newAlertAckCmd)
}

func newAlertListCmd(g *cmdutil.Globals) *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use:     "list [--status open|acknowledged]",
		Aliases: []string{"ls"},
		Short:   "List alerts, oldest first",
		Example: `  zdps alert list --status open`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch status {
			case "", "open", "acknowledged":
			default:
				return cmdutil.Errorf(nil, "--status must be open or acknowledged, not %q", status)
			}
			return g.Call(cmd, nil, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				seq := c.AllAlerts(ctx, client.AlertQuery{Status: status})
				onErr := func(err error) error { return cmdutil.FailList(err, "alerts") }
				return cmdutil.PrintList(p, seq, onErr,
					[]string{"ID", "TIME", "RULE", "SEVERITY", "STATUS", "KEY", "RESPONSE"},
					func(a *dps.Alert) []string {
						return []string{a.ID, a.Time.UTC().Format(time.RFC3339), a.Rule, a.Severity, a.Status, a.Key, a.Response}
					})
			})
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only open or only acknowledged alerts")
	return cmd
}

func newAlertShowCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*dps.Alert]{
		Use: "show ID", Short: "Show an alert with its evidence and the events that raised it",
		Example:  `  zdps alert show 01JD3Q1Z8K2M4N6P8R0S2T4V6X`,
		Resource: "alert", Action: "show",
		Get:   func(c *client.Client, ctx context.Context, id string) (*dps.Alert, error) { return c.Alert(ctx, id) },
		Print: printAlert,
	})
}

func newAlertAckCmd(g *cmdutil.Globals) *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:     "ack ID [--etag E]",
		Aliases: []string{"acknowledge"},
		Short:   "Acknowledge an alert (recorded in the audit trail with who did it)",
		Example: `  zdps alert ack 01JD3Q1Z8K2M4N6P8R0S2T4V6X`,
		Args:    cmdutil.ExactArgs("ID"),
		RunE: g.Run(cmdutil.FetchID(func(c *client.Client, ctx context.Context, id string) (*dps.Alert, error) {
			return c.AckAlert(ctx, id, etag)
		},
			"alert", "acknowledge", printAlert)),
	}
	cmd.Flags().StringVar(&etag, "etag", "", "acknowledge only if the alert's etag still is this one")
	return cmd
}

func printAlert(p cmdutil.Printer, a *dps.Alert) error {
	if p.JSON {
		return p.PrintJSON(a)
	}
	var ev []string
	for _, k := range slices.Sorted(maps.Keys(a.Evidence)) {
		ev = append(ev, k+"="+a.Evidence[k])
	}
	acked := ""
	if !a.AcknowledgedAt.IsZero() {
		acked = a.AcknowledgedAt.UTC().Format(time.RFC3339)
	}
	return p.Details(
		"ID", a.ID,
		"Rule", a.Rule,
		"Severity", a.Severity,
		"Status", a.Status,
		"Time", a.Time.UTC().Format(time.RFC3339),
		"Key", a.Key,
		"Registration ID", a.RegistrationID,
		"Group", a.Group,
		"Evidence", strings.Join(ev, " "),
		"Events", strings.Join(a.EventIDs, " "),
		"Response", a.Response,
		"Acknowledged by", a.AcknowledgedBy,
		"Acknowledged at", acked,
		"ETag", a.ETag,
	)
}
