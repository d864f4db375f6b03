package consolecmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
)

// NewConsoleCmd is `zdps console`.
func NewConsoleCmd(g *cmdutil.Globals) *cobra.Command {
	cmd := cmdutil.Parent("console", "The web console served at https://HOST/console")
	cmd.AddCommand(&cobra.Command{
		Use:   "link",
		Short: "Print a one-time sign-in link to the web console for the policy of the connection string",
		Long: `Print a one-time sign-in link to the web console. Opening it shows a Sign in
button; pressing it starts a console session with the rights of the shared
access policy of the connection string the CLI uses. The link works once and
expires after a few minutes (zdps serve --console-link-ttl).`,
		Args: cobra.NoArgs,
		RunE: g.Run(cmdutil.Fetch((*client.Client).ConsoleLink, cmdutil.FailCall("ask for a console sign-in link"),
			cmdutil.JSONOr(func(p cmdutil.Printer, l *client.ConsoleLink) error {
				_, err := fmt.Fprintf(p.W, "%s\n(one use, for %s, until %s)\n", l.URL, l.Principal, l.Expires.UTC().Format(time.RFC3339))
				return err
			}))),
	})
	return cmd
}
