package cmdutil

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/pkg/client"
)

// RunFunc is the part of a command that calls the service: it is handed
// the command's context, the client, the printer of --output and the
// arguments.
type RunFunc func(ctx context.Context, c *client.Client, p Printer, args []string) error

// Call checks the global flags, builds the client and runs run: how every
// command that calls the service ends, after its own checks of its flags
// and arguments.
func (g *Globals) Call(cmd *cobra.Command, args []string, run RunFunc) error {
	c, err := g.Ready()
	if err != nil {
		return err
	}
	return run(cmd.Context(), c, g.Printer(cmd.OutOrStdout()), args)
}

// Run is Call as a command's RunE, for the commands with no checks of
// their own before the call.
func (g *Globals) Run(run RunFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return g.Call(cmd, args, run) }
}

// Fetch is the RunFunc of a command that makes one call and prints its
// answer; onErr words the call's failure for the user.
func Fetch[V any](get func(*client.Client, context.Context) (V, error), onErr func(error) error, print func(Printer, V) error) RunFunc {
	return func(ctx context.Context, c *client.Client, p Printer, _ []string) error {
		v, err := get(c, ctx)
		if err != nil {
			return onErr(err)
		}
		return print(p, v)
	}
}

// FetchID is Fetch of a call on the item the first argument names,
// its failure worded by Fail as an action on a kind.
func FetchID[V any](get func(c *client.Client, ctx context.Context, id string) (V, error), kind, action string, print func(Printer, V) error) RunFunc {
	return func(ctx context.Context, c *client.Client, p Printer, args []string) error {
		return Fetch(func(c *client.Client, ctx context.Context) (V, error) { return get(c, ctx, args[0]) },
			Failing(kind, args[0], action), print)(ctx, c, p, args)
	}
}

// JSONOr prints a value as the service answered it under -o json, and
// with text otherwise.
func JSONOr[V any](text func(Printer, V) error) func(Printer, V) error {
	return func(p Printer, v V) error {
		if p.JSON {
			return p.PrintJSON(v)
		}
		return text(p, v)
	}
}

// FailCall words the failure of a call that is about no one item:
// "doing: why".
func FailCall(doing string) func(error) error {
	return func(err error) error { return Errorf(err, "%s: %s", doing, UnwrapTransport(err)) }
}

// Failing is Fail as the onErr of Fetch.
func Failing(kind, id, action string) func(error) error {
	return func(err error) error { return Fail(err, kind, id, action) }
}
