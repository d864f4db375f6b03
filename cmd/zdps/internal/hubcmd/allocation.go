package hubcmd

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewAllocationCmd is `zdps allocation`.
func NewAllocationCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "allocation", "Instance allocation policy, and why a device goes where it goes", nil, newAllocationSetDefaultCmd, newAllocationShowCmd, newAllocationExplainCmd)
}

func newAllocationSetDefaultCmd(g *cmdutil.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set-default POLICY",
		Short: "Set the allocation policy of enrollments that name none (hashed, geoLatency, static, custom)",
		Long: `Set the instance's default allocation policy. It applies to enrollments without
their own allocationPolicy, from their devices' next registration on; devices
already assigned move only when they register again and their reprovision
policy allows it.`,
		Example: `  zdps allocation set-default geoLatency`,
		Args:    cmdutil.ExactArgs("POLICY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			policy, ok := enrollment.NormalizeAllocationPolicy(args[0])
			if !ok {
				return cmdutil.Errorf(nil, "%q is not an allocation policy (use hashed, geoLatency, static or custom)", args[0])
			}
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				s, err := c.GetSettings(ctx)
				if err != nil {
					return cmdutil.Fail(err, "settings", "", "read")
				}
				s.DefaultAllocationPolicy = policy
				got, err := c.PutSettings(ctx, s, s.ETag) // If-Match: a concurrent change fails with 412
				if err != nil {
					return cmdutil.Fail(err, "settings", "", "update")
				}
				return printSettings(p, got)
			})
		},
	}
}

func newAllocationShowCmd(g *cmdutil.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show the instance's default allocation policy",
		Args:  cobra.NoArgs,
		RunE:  g.Run(cmdutil.Fetch((*client.Client).GetSettings, cmdutil.Failing("settings", "", "read"), printSettings)),
	}
}

func printSettings(p cmdutil.Printer, s *enrollment.Settings) error {
	if p.JSON {
		return p.PrintJSON(s)
	}
	return p.Details("Default allocation policy", s.DefaultAllocationPolicy, "ID scope", s.IDScope)
}

// explainConfig is the configuration of `zdps allocation explain`.
type explainConfig struct {
	Group         string
	Payload       string
	SourceAddress string
	SourceRTT     time.Duration
}

func newAllocationExplainCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg explainConfig
	cmd := &cobra.Command{
		Use:   "explain REGISTRATION_ID [--group ID] [--payload JSON] [--source-address IP]",
		Short: "Show which hub each allocation policy would choose for a device, and why",
		Long: `Show, for a registration ID, which hub each allocation policy would choose and
why, which linked hubs are eligible (and why not), and which policy a
registration would use. Nothing is registered. Explaining the custom policy
calls the enrollment's webhook, exactly as a registration would.

A device of an enrollment group that has not registered yet is known only by
its credential: name its group with --group.`,
		Example: `  zdps allocation explain sensor-0042
  zdps allocation explain sensor-0042 --group line-7 --payload '{"region":"westeurope"}'`,
		Args: cmdutil.ExactArgs("REGISTRATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := client.ExplainRequest{RegistrationID: args[0], EnrollmentGroupID: cfg.Group, SourceAddress: cfg.SourceAddress, SourceRTTMs: float64(cfg.SourceRTT) / float64(time.Millisecond)}
			if cfg.Payload != "" {
				if !json.Valid([]byte(cfg.Payload)) {
					return cmdutil.Errorf(nil, "--payload is not JSON")
				}
				req.Payload = json.RawMessage(cfg.Payload)
			}
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				x, err := c.ExplainAllocation(ctx, req)
				if err != nil {
					return cmdutil.Fail(err, "registration", args[0], "explain")
				}
				return printExplanation(p, x)
			})
		},
	}
	cmd.Flags().StringVar(&cfg.Group, "group", "", "enrollment group of a device without individual enrollment or registration record")
	cmd.Flags().StringVar(&cfg.Payload, "payload", "", "registration payload to assume (JSON)")
	cmd.Flags().StringVar(&cfg.SourceAddress, "source-address", "", "device IP address to assume (geoLatency source networks)")
	cmd.Flags().DurationVar(&cfg.SourceRTT, "source-rtt", 0, "measured round trip to the device to assume, e.g. 4ms (geoLatency --geo-local-rtt)")
	return cmd
}

func printExplanation(p cmdutil.Printer, x *client.Explanation) error {
	if p.JSON {
		return p.PrintJSON(x)
	}
	reprov := "move and migrate"
	switch {
	case !x.ReprovisionPolicy.UpdateHubAssignment:
		reprov = "never move"
	case !x.ReprovisionPolicy.MigrateDeviceData:
		reprov = "move and reset"
	}
	if err := p.Details(
		"Registration ID", x.RegistrationID,
		"Enrollment", x.EnrollmentKind+" "+x.EnrollmentID,
		"Effective policy", x.EffectivePolicy,
		"Pinned hub (iotHubHostName)", x.PinnedHub,
		"Current hub", x.CurrentHub,
		"Reprovisioning", reprov,
	); err != nil {
		return err
	}
	if _, err := p.W.Write([]byte("\n")); err != nil {
		return err
	}
	t := p.Table("POLICY", "EFFECTIVE", "HUB", "WHY")
	for _, d := range x.Decisions {
		why := d.Reason
		if d.Error != "" {
			why = d.Error
		}
		eff := ""
		if d.Effective {
			eff = "yes"
		}
		t.Row(d.Policy, eff, d.Hub, why)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if _, err := p.W.Write([]byte("\n")); err != nil {
		return err
	}
	t = p.Table("HUB", "ELIGIBLE", "DEVICES", "CAPACITY", "WHY NOT")
	for _, h := range x.Hubs {
		capacity := ""
		if h.Capacity > 0 {
			capacity = strconv.Itoa(h.Capacity)
		}
		devices := ""
		if h.Capacity > 0 {
			devices = strconv.Itoa(h.DeviceCount)
		}
		t.Row(h.Hub, strconv.FormatBool(h.Eligible), devices, capacity, h.Reason)
	}
	return t.Flush()
}
