// Command zdps is the zdps server and its CLI in one binary: `zdps serve`
// runs the server, the other commands manage it through the service API.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zdps/zdps/cmd/zdps/internal/castorecmd"
	"github.com/zdps/zdps/cmd/zdps/internal/cli"
)

func main() { os.Exit(zdpsMain()) }

// zdpsMain runs the command line and returns the exit status; tests run it
// in-process through testscript.
func zdpsMain() int {
	// Ctrl-C cancels the context: an import stops its batches, writes its
	// summary and failed rows, and can be resumed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cli.NewRoot(cli.Options{})
	root.AddCommand(newServeCmd())
	castorecmd.AddTo(root)
	root.AddCommand(newVersionCmd())
	setVersionFlag(root)
	return cli.Execute(ctx, root)
}
