package cli

import (
	"errors"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

func newHubCmd(g *globals) *cobra.Command {
	cmd := parent("hub", "Manage the linked hubs devices are assigned to", "hubs")
	cmd.AddCommand(newHubAddCmd(g), newHubListCmd(g), newHubUpdateCmd(g), newHubRemoveCmd(g))
	return cmd
}

// hubAddConfig is the configuration of `zdps hub add`.
type hubAddConfig struct {
	Name    string
	Weight  int
	Region  string
	NoApply bool
}

func newHubAddCmd(g *globals) *cobra.Command {
	var cfg hubAddConfig
	cmd := &cobra.Command{
		Use:     "add HOST_NAME",
		Short:   "Link a hub (fails if it is already linked)",
		Example: `  zdps hub add hub1.example.com --weight 100 --region westeurope`,
		Args:    exactArgs("HOST_NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Name = args[0]
			h := &enrollment.Hub{Name: cfg.Name, AllocationWeight: cfg.Weight, Region: cfg.Region}
			if cfg.NoApply {
				h.ApplyAllocationPolicy = new(false)
			}
			if err := h.Validate(); err != nil {
				return userErrorf(err, "invalid hub: %v", err)
			}
			c, err := g.ready()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// The API has no create-only PUT for hubs; checking first keeps
			// "add" from silently replacing a hub's settings. The window
			// between the two calls only matters to two admins adding the
			// same hub at once, and then both wrote the same thing.
			switch _, err := c.GetHub(ctx, cfg.Name); {
			case err == nil:
				return userErrorf(nil, "hub %q is already linked (use zdps hub update)", cfg.Name)
			case !errors.Is(err, client.ErrNotFound):
				return fail(err, "hub", cfg.Name, "add")
			}
			got, err := c.PutHub(ctx, h, "")
			if err != nil {
				return fail(err, "hub", cfg.Name, "add")
			}
			return printHubs(g.printer(cmd.OutOrStdout()), got)
		},
	}
	cmd.Flags().IntVar(&cfg.Weight, "weight", 1, "allocation weight, 1 to 1000")
	cmd.Flags().StringVar(&cfg.Region, "region", "", "region, for geoLatency allocation")
	cmd.Flags().BoolVar(&cfg.NoApply, "no-apply-allocation-policy", false, "never choose this hub by allocation policy (only when named explicitly)")
	return cmd
}

func printHubs(p printer, hubs ...*enrollment.Hub) error {
	if p.json {
		if len(hubs) == 1 {
			return p.printJSON(hubs[0])
		}
		return p.printJSON(hubs)
	}
	t := p.table("NAME", "WEIGHT", "APPLY POLICY", "REGION")
	for _, h := range hubs {
		t.row(h.Name, strconv.Itoa(max(h.AllocationWeight, 1)), strconv.FormatBool(h.AppliesPolicy()), h.Region)
	}
	return t.flush()
}

func newHubListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the linked hubs",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.ready()
			if err != nil {
				return err
			}
			hubs := []*enrollment.Hub{}
			for h, err := range c.Hubs(cmd.Context(), 0) {
				if err != nil {
					return failList(err, "hubs")
				}
				hubs = append(hubs, h)
			}
			p := g.printer(cmd.OutOrStdout())
			if p.json {
				return p.printJSON(hubs)
			}
			return printHubs(p, hubs...)
		},
	}
}

// hubUpdateConfig is the configuration of `zdps hub update`; only the
// flags given change the hub.
type hubUpdateConfig struct {
	Name    string
	Weight  int
	Region  string
	Apply   bool
	NoApply bool
}

func newHubUpdateCmd(g *globals) *cobra.Command {
	var cfg hubUpdateConfig
	cmd := &cobra.Command{
		Use:     "update HOST_NAME [--weight N] [--region R] [--apply-allocation-policy=true|false]",
		Short:   "Change a linked hub's settings",
		Example: `  zdps hub update hub1.example.com --weight 500`,
		Args:    exactArgs("HOST_NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Name = args[0]
			fl := cmd.Flags()
			if !fl.Changed("weight") && !fl.Changed("region") && !fl.Changed("apply-allocation-policy") && !fl.Changed("no-apply-allocation-policy") {
				return userErrorf(nil, "nothing to update: give --weight, --region or --apply-allocation-policy")
			}
			if fl.Changed("apply-allocation-policy") && fl.Changed("no-apply-allocation-policy") {
				return userErrorf(nil, "give --apply-allocation-policy or --no-apply-allocation-policy, not both")
			}
			c, err := g.ready()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// Read-modify-write with If-Match: a concurrent change makes
			// this fail with 412 instead of being overwritten.
			h, err := c.GetHub(ctx, cfg.Name)
			if err != nil {
				return fail(err, "hub", cfg.Name, "update")
			}
			if fl.Changed("weight") {
				h.AllocationWeight = cfg.Weight
			}
			if fl.Changed("region") {
				h.Region = cfg.Region
			}
			if fl.Changed("apply-allocation-policy") {
				h.ApplyAllocationPolicy = new(cfg.Apply)
			}
			if fl.Changed("no-apply-allocation-policy") {
				h.ApplyAllocationPolicy = new(!cfg.NoApply)
			}
			if err := h.Validate(); err != nil {
				return userErrorf(err, "invalid hub: %v", err)
			}
			got, err := c.PutHub(ctx, h, h.ETag)
			if err != nil {
				return fail(err, "hub", cfg.Name, "update")
			}
			return printHubs(g.printer(cmd.OutOrStdout()), got)
		},
	}
	cmd.Flags().IntVar(&cfg.Weight, "weight", 1, "allocation weight, 1 to 1000")
	cmd.Flags().StringVar(&cfg.Region, "region", "", "region, for geoLatency allocation")
	cmd.Flags().BoolVar(&cfg.Apply, "apply-allocation-policy", true, "whether allocation policies may choose this hub")
	cmd.Flags().BoolVar(&cfg.NoApply, "no-apply-allocation-policy", false, "same as --apply-allocation-policy=false")
	return cmd
}

func newHubRemoveCmd(g *globals) *cobra.Command {
	var cfg deleteConfig
	cmd := &cobra.Command{
		Use:     "remove HOST_NAME",
		Aliases: []string{"rm", "delete"},
		Short:   "Unlink a hub (devices already assigned to it stay there)",
		Args:    exactArgs("HOST_NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.ID = args[0]
			c, err := g.ready()
			if err != nil {
				return err
			}
			if err := c.DeleteHub(cmd.Context(), cfg.ID, cfg.ETag); err != nil {
				return fail(err, "hub", cfg.ID, "remove")
			}
			if g.output == "json" {
				return nil
			}
			_, err = cmd.OutOrStdout().Write([]byte("hub \"" + cfg.ID + "\" removed\n"))
			return err
		},
	}
	cmd.Flags().StringVar(&cfg.ETag, "etag", "", "remove only if the hub's etag still is this one")
	return cmd
}
