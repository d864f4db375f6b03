package cmdutil

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/pkg/client"
)

// Parent builds a command that only holds subcommands: bare, it prints
// its help; with an unknown subcommand, it fails (cobra would print the
// help and exit 0, which hides typos in scripts).
func Parent(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Aliases: aliases,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return Errorf(nil, "unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}

// ExactArgs is cobra.ExactArgs with the argument names in the message.
func ExactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return Errorf(nil, "%s needs %s (got %d argument(s); see --help)", cmd.CommandPath(), strings.Join(names, " "), len(args))
		}
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				return Errorf(nil, "%s: %s is empty", cmd.CommandPath(), names[i])
			}
		}
		return nil
	}
}

// DeleteSpec describes the delete (or remove) command of one resource.
type DeleteSpec struct {
	Use, Short string   // cobra Use ("delete ID") and Short
	Aliases    []string // default rm
	Resource   string   // in messages: "enrollment group"
	Verb       string   // "delete" (default) or "remove"
	// Validate checks the ID before any call, when set.
	Validate func(string) error
	Delete   func(c *client.Client, ctx context.Context, id, etag string) error
}

// NewDeleteCmd builds a delete command: one ID argument, an optional
// --etag precondition, a one-line confirmation in table mode.
func NewDeleteCmd(g *Globals, s DeleteSpec) *cobra.Command {
	if s.Verb == "" {
		s.Verb = "delete"
	}
	if s.Aliases == nil {
		s.Aliases = []string{"rm"}
	}
	var etag string
	cmd := &cobra.Command{
		Use:     s.Use,
		Aliases: s.Aliases,
		Short:   s.Short,
		Args:    ExactArgs(s.Use[strings.LastIndexByte(s.Use, ' ')+1:]),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if s.Validate != nil {
				if err := s.Validate(id); err != nil {
					return Errorf(err, "%v", err)
				}
			}
			c, err := g.Ready()
			if err != nil {
				return err
			}
			if err := s.Delete(c, cmd.Context(), id, etag); err != nil {
				return Fail(err, s.Resource, id, s.Verb)
			}
			if g.JSON() {
				return nil
			}
			_, err = cmd.OutOrStdout().Write([]byte(s.Resource + " \"" + id + "\" " + s.Verb + "d\n"))
			return err
		},
	}
	cmd.Flags().StringVar(&etag, "etag", "", s.Verb+" only if the "+s.Resource+"'s etag still is this one")
	return cmd
}
