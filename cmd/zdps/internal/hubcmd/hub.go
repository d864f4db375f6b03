package hubcmd

import (
	"context"
	"errors"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/spf13/pflag"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewHubCmd is `zdps hub`.
func NewHubCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "hub", "Manage the linked hubs devices are assigned to", []string{"hubs"}, newHubAddCmd, newHubListCmd, newHubUpdateCmd, newHubRemoveCmd, newHubDrainCmd)
}

// hubFlags are the hub settings add and update share.
type hubFlags struct {
	Weight    int
	Region    string
	Latitude  float64
	Longitude float64
	Capacity  int
	Status    string
	Apply     bool
	NoApply   bool
}

func (f *hubFlags) register(fs *pflag.FlagSet, update bool) {
	fs.IntVar(&f.Weight, "weight", 1, "allocation weight, 1 to 1000 (share of the hashed policy)")
	fs.StringVar(&f.Region, "region", "", "region, for the geoLatency policy")
	fs.Float64Var(&f.Latitude, "latitude", 0, "latitude in degrees, with --longitude, for the geoLatency policy")
	fs.Float64Var(&f.Longitude, "longitude", 0, "longitude in degrees, with --latitude")
	fs.IntVar(&f.Capacity, "capacity", 0, "most devices the hub may hold; 0 = unlimited")
	fs.StringVar(&f.Status, "status", "healthy", "healthy, unhealthy or draining (unhealthy and draining hubs get no new devices)")
	fs.BoolVar(&f.NoApply, "no-apply-allocation-policy", false, "never choose this hub by allocation policy (only when named explicitly)")
	if update {
		fs.BoolVar(&f.Apply, "apply-allocation-policy", true, "whether allocation policies may choose this hub")
		fs.Bool("clear-location", false, "remove the hub's latitude and longitude")
	}
}

// apply copies the flags the user gave onto h.
func (f *hubFlags) apply(fs *pflag.FlagSet, h *enrollment.Hub) error {
	if fs.Changed("latitude") != fs.Changed("longitude") {
		return cmdutil.Errorf(nil, "give --latitude and --longitude together")
	}
	if fs.Changed("weight") {
		h.AllocationWeight = f.Weight
	}
	if fs.Changed("region") {
		h.Region = f.Region
	}
	if fs.Changed("latitude") {
		h.Latitude, h.Longitude = new(f.Latitude), new(f.Longitude)
	}
	if c, _ := fs.GetBool("clear-location"); c {
		h.Latitude, h.Longitude = nil, nil
	}
	if fs.Changed("capacity") {
		h.Capacity = f.Capacity
	}
	if fs.Changed("status") {
		h.Status = f.Status
	}
	if fs.Changed("apply-allocation-policy") {
		h.ApplyAllocationPolicy = new(f.Apply)
	}
	if fs.Changed("no-apply-allocation-policy") {
		h.ApplyAllocationPolicy = new(!f.NoApply)
	}
	if err := h.Validate(); err != nil {
		return cmdutil.Errorf(err, "invalid hub: %v", err)
	}
	return nil
}

func newHubAddCmd(g *cmdutil.Globals) *cobra.Command {
	var f hubFlags
	cmd := &cobra.Command{
		Use:   "add HOST_NAME [--weight N] [--region R] [--latitude LAT --longitude LON] [--capacity N]",
		Short: "Link a hub (fails if it is already linked)",
		Example: `  zdps hub add hub1.example.com --weight 100 --region westeurope
  zdps hub add hub2.example.com --latitude 52.52 --longitude 13.40 --capacity 50000`,
		Args: cmdutil.ExactArgs("HOST_NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			h := &enrollment.Hub{Name: name, AllocationWeight: f.Weight}
			if err := f.apply(cmd.Flags(), h); err != nil {
				return err
			}
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				// Create-only (If-None-Match: *): two operators adding the same
				// hub at once cannot overwrite each other's settings.
				got, err := c.CreateHub(ctx, h)
				if errors.Is(err, client.ErrConflict) {
					return cmdutil.Errorf(err, "hub %q is already linked (use zdps hub update)", name)
				}
				if err != nil {
					return cmdutil.Fail(err, "hub", name, "add")
				}
				return printHubs(p, got)
			})
		},
	}
	f.register(cmd.Flags(), false)
	return cmd
}

func printHubs(p cmdutil.Printer, hubs ...*enrollment.Hub) error {
	if p.JSON {
		return cmdutil.PrintItems(p, hubs)
	}
	t := p.Table("NAME", "WEIGHT", "APPLY POLICY", "REGION", "LOCATION", "CAPACITY", "STATUS", "DEVICES")
	for _, h := range hubs {
		loc, capacity, status, devices := "", "", h.Status, ""
		if h.HasCoordinates() {
			loc = strconv.FormatFloat(*h.Latitude, 'f', -1, 64) + "," + strconv.FormatFloat(*h.Longitude, 'f', -1, 64)
		}
		if h.Capacity > 0 {
			capacity = strconv.Itoa(h.Capacity)
		}
		if status == "" {
			status = enrollment.HubHealthy
		}
		if h.DeviceCount != nil {
			devices = strconv.Itoa(*h.DeviceCount)
		}
		t.Row(h.Name, strconv.Itoa(max(h.AllocationWeight, 1)), strconv.FormatBool(h.AppliesPolicy()), h.Region, loc, capacity, status, devices)
	}
	return t.Flush()
}

func newHubListCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewListAllCmd(g, cmdutil.ListAllSpec[*enrollment.Hub]{
		Short: "List the linked hubs with how many devices each holds", What: "hubs",
		List: cmdutil.All((*client.Client).Hubs), Print: printHubs,
	})
}

func newHubUpdateCmd(g *cmdutil.Globals) *cobra.Command {
	var f hubFlags
	cmd := &cobra.Command{
		Use:     "update HOST_NAME [--weight N] [--region R] [--latitude LAT --longitude LON] [--capacity N] [--status S] [--apply-allocation-policy=true|false]",
		Short:   "Change a linked hub's settings",
		Example: `  zdps hub update hub1.example.com --weight 500 --capacity 100000`,
		Args:    cmdutil.ExactArgs("HOST_NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			fl := cmd.Flags()
			changed := false
			for _, n := range []string{"weight", "region", "latitude", "longitude", "clear-location", "capacity", "status", "apply-allocation-policy", "no-apply-allocation-policy"} {
				changed = changed || fl.Changed(n)
			}
			if !changed {
				return cmdutil.Errorf(nil, "nothing to update: give --weight, --region, --latitude/--longitude, --capacity, --status or --apply-allocation-policy")
			}
			if fl.Changed("apply-allocation-policy") && fl.Changed("no-apply-allocation-policy") {
				return cmdutil.Errorf(nil, "give --apply-allocation-policy or --no-apply-allocation-policy, not both")
			}
			return updateHub(cmd, g, name, "update", func(h *enrollment.Hub) error { return f.apply(fl, h) })
		},
	}
	f.register(cmd.Flags(), true)
	return cmd
}

// updateHub is a read-modify-write with If-Match: a concurrent change
// makes it fail with 412 instead of being overwritten.
func updateHub(cmd *cobra.Command, g *cmdutil.Globals, name, action string, change func(*enrollment.Hub) error) error {
	c, err := g.Ready()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	h, err := c.GetHub(ctx, name)
	if err != nil {
		return cmdutil.Fail(err, "hub", name, action)
	}
	if err := change(h); err != nil {
		return err
	}
	got, err := c.PutHub(ctx, h, h.ETag)
	if err != nil {
		return cmdutil.Fail(err, "hub", name, action)
	}
	return printHubs(g.Printer(cmd.OutOrStdout()), got)
}

func newHubDrainCmd(g *cmdutil.Globals) *cobra.Command {
	var undo bool
	cmd := &cobra.Command{
		Use:   "drain HOST_NAME [--undo]",
		Short: "Stop assigning new devices to a hub (devices on it stay until they re-provision)",
		Long: `Mark a hub draining: allocation policies skip it for new assignments, and a
device on it that registers again is moved (if its reprovision policy allows).
Devices already there are not moved by zdps. --undo marks it healthy again.`,
		Example: `  zdps hub drain hub1.example.com
  zdps hub drain hub1.example.com --undo`,
		Args: cmdutil.ExactArgs("HOST_NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			status := enrollment.HubDraining
			if undo {
				status = ""
			}
			return updateHub(cmd, g, args[0], "drain", func(h *enrollment.Hub) error {
				h.Status = status
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&undo, "undo", false, "mark the hub healthy again")
	return cmd
}

func newHubRemoveCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewDeleteCmd(g, cmdutil.DeleteSpec{
		Use: "remove HOST_NAME", Aliases: []string{"rm", "delete"}, Verb: "remove", Resource: "hub",
		Short:  "Unlink a hub (devices already assigned to it stay there)",
		Delete: (*client.Client).DeleteHub,
	})
}
