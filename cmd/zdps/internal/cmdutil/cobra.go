package cmdutil

import (
	"context"
	"iter"
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

// ParentOf is Parent holding its subcommands, each built with g.
func ParentOf(g *Globals, use, short string, aliases []string, subs ...func(*Globals) *cobra.Command) *cobra.Command {
	cmd := Parent(use, short, aliases...)
	for _, sub := range subs {
		cmd.AddCommand(sub(g))
	}
	return cmd
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
		Args:    ExactArgs(argName(s.Use)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if s.Validate != nil {
				if err := s.Validate(id); err != nil {
					return Errorf(err, "%v", err)
				}
			}
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, p Printer, _ []string) error {
				if err := s.Delete(c, ctx, id, etag); err != nil {
					return Fail(err, s.Resource, id, s.Verb)
				}
				if p.JSON {
					return nil
				}
				_, err := p.W.Write([]byte(s.Resource + " \"" + id + "\" " + s.Verb + "d\n"))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&etag, "etag", "", s.Verb+" only if the "+s.Resource+"'s etag still is this one")
	return cmd
}

// ShowSpec describes a command that fetches one item by its ID and prints
// it.
type ShowSpec[V any] struct {
	Use, Short, Example string // cobra Use ("get NAME"), Short and Example
	Resource            string // in messages: "policy"
	Action              string // in messages: "get", "get keys of"
	Get                 func(c *client.Client, ctx context.Context, id string) (V, error)
	Print               func(Printer, V) error
}

// NewShowCmd builds a show command: one ID argument, one call.
func NewShowCmd[V any](g *Globals, s ShowSpec[V]) *cobra.Command {
	return &cobra.Command{
		Use:     s.Use,
		Short:   s.Short,
		Example: s.Example,
		Args:    ExactArgs(argName(s.Use)),
		RunE:    g.Run(FetchID(s.Get, s.Resource, s.Action, s.Print)),
	}
}

// ListAllSpec describes the list command of a small collection, read
// whole and then printed.
type ListAllSpec[V any] struct {
	Short string
	What  string // in messages: "hubs"
	List  func(c *client.Client, ctx context.Context) ([]V, error)
	// Print writes the table.
	Print func(Printer, ...V) error
}

// NewListAllCmd builds a list command without arguments; its JSON is
// always an array.
func NewListAllCmd[V any](g *Globals, s ListAllSpec[V]) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   s.Short,
		Args:    cobra.NoArgs,
		RunE: g.Run(func(ctx context.Context, c *client.Client, p Printer, _ []string) error {
			all, err := s.List(c, ctx)
			if err != nil {
				return FailList(err, s.What)
			}
			if p.JSON {
				if all == nil {
					all = []V{}
				}
				return p.PrintJSON(all)
			}
			return s.Print(p, all...)
		}),
	}
}

// All makes a paged listing call a ListAllSpec.List: every page, at the
// service's page size.
func All[V any](list func(*client.Client, context.Context, int) iter.Seq2[V, error]) func(*client.Client, context.Context) ([]V, error) {
	return func(c *client.Client, ctx context.Context) ([]V, error) {
		var all []V
		for v, err := range list(c, ctx, 0) {
			if err != nil {
				return nil, err
			}
			all = append(all, v)
		}
		return all, nil
	}
}

// argName is the argument name in a Use line ("delete ID" → "ID").
func argName(use string) string { return use[strings.LastIndexByte(use, ' ')+1:] }
