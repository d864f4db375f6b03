package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cacmd"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/cmd/zdps/internal/consolecmd"
	"github.com/zdps/zdps/cmd/zdps/internal/devicecmd"
	"github.com/zdps/zdps/cmd/zdps/internal/enrollcmd"
	"github.com/zdps/zdps/cmd/zdps/internal/hubcmd"
	"github.com/zdps/zdps/cmd/zdps/internal/opscmd"
	"github.com/zdps/zdps/cmd/zdps/internal/secopscmd"
	"github.com/zdps/zdps/cmd/zdps/internal/sitecmd"
)

// Options are the process-level inputs of the CLI, injected so that tests
// control them.
type Options = cmdutil.Options

// NewRoot returns the zdps root command with every management command.
// The caller adds `serve`.
func NewRoot(opts Options) *cobra.Command {
	g := cmdutil.NewGlobals(opts)
	root := &cobra.Command{
		Use:   "zdps",
		Short: "Self-hosted device provisioning service compatible with Azure IoT Hub DPS",
		Long: `zdps is a self-hosted device provisioning service that speaks the Azure IoT Hub DPS
protocols. "zdps serve" runs the server; the other commands manage it through its
service API.

The management commands find the service through a connection string, taken from
--connection-string, else $` + cmdutil.EnvConnectionString + `, else the file ` + cmdutil.ConnectionStringFile + `
that "zdps serve" writes into its data directory (--data-dir, $` + cmdutil.EnvDataDir + `, default ./` + cmdutil.DefaultDataDir + `).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(g.Opts.Stdin)
	root.SetOut(g.Opts.Stdout)
	root.SetErr(g.Opts.Stderr)
	g.RegisterFlags(root.PersistentFlags())
	root.AddGroup(&cobra.Group{ID: "manage", Title: "Management commands:"})
	for _, c := range []*cobra.Command{
		enrollcmd.NewEnrollmentCmd(g), enrollcmd.NewGroupCmd(g), hubcmd.NewHubCmd(g), hubcmd.NewRegistrationCmd(g), hubcmd.NewPolicyCmd(g),
		hubcmd.NewAllocationCmd(g), sitecmd.NewSiteCmd(g),
		cacmd.NewCACmd(g), consolecmd.NewConsoleCmd(g),
	} {
		c.GroupID = "manage"
		root.AddCommand(c)
	}
	root.AddCommand(devicecmd.NewDeviceCmd(g))
	root.AddCommand(devicecmd.NewTPMCmd(g))
	root.AddCommand(devicecmd.NewDiceCmd(g))
	root.AddCommand(opscmd.NewMigrateCmd(g))
	root.AddCommand(opscmd.NewBackupCmd(g), opscmd.NewRestoreCmd(g), opscmd.NewCompactCmd(g))
	root.AddCommand(devicecmd.NewBenchCmd(g))
	root.AddGroup(&cobra.Group{ID: "secops", Title: "Security operations commands:"})
	for _, c := range []*cobra.Command{secopscmd.NewAuditCmd(g), secopscmd.NewAlertCmd(g), secopscmd.NewPostureCmd(g)} {
		c.GroupID = "secops"
		root.AddCommand(c)
	}
	return root
}

// Execute runs root and turns its error into one line on stderr. It
// returns the process exit status.
func Execute(ctx context.Context, root *cobra.Command) int { return cmdutil.Execute(ctx, root) }
