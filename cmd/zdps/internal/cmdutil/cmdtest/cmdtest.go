package cmdtest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
)

// Runner returns a function that runs `zdps ARGS` on a root holding the
// global flags and the commands cmds build, and returns the exit status,
// stdout and stderr.
func Runner(cmds ...func(*cmdutil.Globals) *cobra.Command) func(t testing.TB, args ...string) (int, string, string) {
	return RunnerWithEnv(nil, cmds...)
}

// RunnerWithEnv is Runner with env as the whole environment.
func RunnerWithEnv(env map[string]string, cmds ...func(*cmdutil.Globals) *cobra.Command) func(t testing.TB, args ...string) (int, string, string) {
	return func(t testing.TB, args ...string) (int, string, string) {
		t.Helper()
		return run(env, cmds, args)
	}
}

func run(env map[string]string, cmds []func(*cmdutil.Globals) *cobra.Command, args []string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	g := cmdutil.NewGlobals(cmdutil.Options{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv:           func(k string) string { return env[k] },
		StderrIsTerminal: func() bool { return false },
	})
	root := &cobra.Command{Use: "zdps", SilenceUsage: true, SilenceErrors: true}
	root.SetIn(g.Opts.Stdin)
	root.SetOut(g.Opts.Stdout)
	root.SetErr(g.Opts.Stderr)
	g.RegisterFlags(root.PersistentFlags())
	for _, c := range cmds {
		root.AddCommand(c(g))
	}
	root.SetArgs(args)
	code := cmdutil.Execute(context.Background(), root)
	return code, stdout.String(), stderr.String()
}
