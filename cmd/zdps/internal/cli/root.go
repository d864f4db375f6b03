package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vbauerster/cupwriter"
)

// Environment variables the CLI reads.
const (
	EnvConnectionString = "ZDPS_CONNECTION_STRING"
	EnvDataDir          = "ZDPS_DATA_DIR"
)

// Files `zdps serve` writes in its data directory.
const (
	ConnectionStringFile = "service-connection-string"
	CABundleFile         = "ca-bundle.pem"
	DefaultDataDir       = "zdps-data"
)

// Options are the process-level inputs of the CLI, injected so that tests
// control them.
type Options struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// StderrIsTerminal decides whether progress bars are drawn; nil means
	// checking the real stderr.
	StderrIsTerminal func() bool
}

// globals are the flags every management command shares.
type globals struct {
	opts             Options
	connectionString string
	dataDir          string
	caFile           string
	output           string
}

// NewRoot returns the zdps root command with every management command.
// The caller adds `serve`.
func NewRoot(opts Options) *cobra.Command {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Stdin == nil {
		opts.Stdin = os.Stdin
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.StderrIsTerminal == nil {
		opts.StderrIsTerminal = func() bool { return cupwriter.New(os.Stderr, false).IsTerminal() }
	}
	g := &globals{opts: opts}
	root := &cobra.Command{
		Use:   "zdps",
		Short: "Self-hosted device provisioning service compatible with Azure IoT Hub DPS",
		Long: `zdps is a self-hosted device provisioning service that speaks the Azure IoT Hub DPS
protocols. "zdps serve" runs the server; the other commands manage it through its
service API.

The management commands find the service through a connection string, taken from
--connection-string, else $` + EnvConnectionString + `, else the file ` + ConnectionStringFile + `
that "zdps serve" writes into its data directory (--data-dir, $` + EnvDataDir + `, default ./` + DefaultDataDir + `).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(opts.Stdin)
	root.SetOut(opts.Stdout)
	root.SetErr(opts.Stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.connectionString, "connection-string", "", "service connection string (default $"+EnvConnectionString+", else <data-dir>/"+ConnectionStringFile+")")
	pf.StringVar(&g.dataDir, "data-dir", "", "zdps data directory (default $"+EnvDataDir+", else ./"+DefaultDataDir+")")
	pf.StringVar(&g.caFile, "ca-file", "", "PEM bundle of CAs to trust for the server's certificate (default <data-dir>/"+CABundleFile+" when it exists, else the system roots)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.AddGroup(&cobra.Group{ID: "manage", Title: "Management commands:"})
	for _, c := range []*cobra.Command{
		newEnrollmentCmd(g), newGroupCmd(g), newHubCmd(g), newRegistrationCmd(g), newPolicyCmd(g),
		newAllocationCmd(g),
		newCACmd(g),
	} {
		c.GroupID = "manage"
		root.AddCommand(c)
	}
	root.AddCommand(newDeviceCmd(g))
	root.AddCommand(newTPMCmd(g))
	root.AddCommand(newDiceCmd(g))
	root.AddCommand(newMigrateCmd(g))
	root.AddCommand(newBackupCmd(g), newRestoreCmd(g), newCompactCmd(g))
	root.AddCommand(newBenchCmd(g))
	return root
}

// Execute runs root and turns its error into one line on stderr. It
// returns the process exit status.
func Execute(ctx context.Context, root *cobra.Command) int {
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	msg := err.Error()
	if _, ok := errors.AsType[*userError](err); !ok {
		// cobra's own errors (unknown command, bad flag) may carry
		// suggestions on further lines; the first line is the message.
		msg, _, _ = strings.Cut(msg, "\n")
		if strings.Contains(msg, "unknown command") || strings.Contains(msg, "flag") || strings.Contains(msg, "arg(s)") {
			msg += " (see --help)"
		}
	}
	fmt.Fprintln(root.ErrOrStderr(), "zdps: "+msg)
	return 1
}

// parent builds a command that only holds subcommands: bare, it prints
// its help; with an unknown subcommand, it fails (cobra would print the
// help and exit 0, which hides typos in scripts).
func parent(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Aliases: aliases,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return userErrorf(nil, "unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}

// userError is an error whose message is written for the user as is.
type userError struct {
	msg string
	err error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.err }

func userErrorf(err error, format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...), err: err}
}
