package cli

import (
	"context"
	"iter"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/pkg/client"
)

// deleteSpec describes the delete (or remove) command of one resource.
type deleteSpec struct {
	use, short string   // cobra Use ("delete ID") and Short
	aliases    []string // default rm
	resource   string   // in messages: "enrollment group"
	verb       string   // "delete" (default) or "remove"
	// validate checks the ID before any call, when set.
	validate func(string) error
	del      func(ctx context.Context, c *client.Client, id, etag string) error
}

// newDeleteCmd builds a delete command: one ID argument, an optional
// --etag precondition, a one-line confirmation in table mode.
func newDeleteCmd(g *globals, s deleteSpec) *cobra.Command {
	if s.verb == "" {
		s.verb = "delete"
	}
	if s.aliases == nil {
		s.aliases = []string{"rm"}
	}
	var cfg deleteConfig
	cmd := &cobra.Command{
		Use:     s.use,
		Aliases: s.aliases,
		Short:   s.short,
		Args:    exactArgs(cobraArgName(s.use)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.ID = args[0]
			if s.validate != nil {
				if err := s.validate(cfg.ID); err != nil {
					return userErrorf(err, "%v", err)
				}
			}
			c, err := g.ready()
			if err != nil {
				return err
			}
			if err := s.del(cmd.Context(), c, cfg.ID, cfg.ETag); err != nil {
				return fail(err, s.resource, cfg.ID, s.verb)
			}
			if g.output == "json" {
				return nil
			}
			_, err = cmd.OutOrStdout().Write([]byte(s.resource + " \"" + cfg.ID + "\" " + s.verb + "d\n"))
			return err
		},
	}
	cmd.Flags().StringVar(&cfg.ETag, "etag", "", s.verb+" only if the "+s.resource+"'s etag still is this one")
	return cmd
}

// cobraArgName is the argument name in a Use line ("delete ID" → "ID").
func cobraArgName(use string) string {
	for i := len(use) - 1; i >= 0; i-- {
		if use[i] == ' ' {
			return use[i+1:]
		}
	}
	return use
}

// printList writes every item of seq: a JSON array streamed item by item,
// or the rows of a table. onErr turns a failed page into the command's
// error.
func printList[T any](p printer, seq iter.Seq2[T, error], onErr func(error) error, header []string, row func(T) []string) error {
	if p.json {
		l := &jsonList{w: p.w}
		for v, err := range seq {
			if err != nil {
				return onErr(err)
			}
			if err := l.add(v); err != nil {
				return err
			}
		}
		return l.end()
	}
	t := p.table(header...)
	for v, err := range seq {
		if err != nil {
			return onErr(err)
		}
		t.row(row(v)...)
	}
	return t.flush()
}
