package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newServeCmd is being written; see the integration commit that replaces it.
func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the zdps server",
		RunE:  func(*cobra.Command, []string) error { return errors.New("serve: not built yet") },
	}
}
