// Command zdps is the zdps server and its CLI in one binary.
package main

import (
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "zdps", SilenceUsage: true}
	root.AddCommand(newServeCmd())
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
