package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what `zdps version` reports, read from the build
// information the Go toolchain embeds in the binary.
type buildVersion struct {
	// Version is the main module's version: a tag, a pseudo-version
	// stamped from the VCS, or "(devel)" when the toolchain recorded none
	// (go run, go test, a build outside a checkout).
	Version string `json:"version"`
	// Commit is the VCS revision, "unknown" when not recorded; Modified
	// says the working tree had uncommitted changes.
	Commit   string `json:"commit"`
	Modified bool   `json:"modified"`
	// CommitTime is the revision's commit time (RFC 3339), if recorded.
	CommitTime string `json:"commitTime,omitempty"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

// readBuildVersion turns build information into a buildVersion; ok is
// false when the binary carries none.
func readBuildVersion(bi *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if !ok || bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "vcs.time":
			v.CommitTime = s.Value
		}
	}
	return v
}

// String is the one-line form: `zdps VERSION (commit COMMIT[, modified][,
// TIME]) GO PLATFORM`.
func (v buildVersion) String() string {
	commit := "commit " + v.Commit
	if v.Modified {
		commit += ", modified"
	}
	if v.CommitTime != "" {
		commit += ", " + v.CommitTime
	}
	return fmt.Sprintf("zdps %s (%s) %s %s", v.Version, commit, v.GoVersion, v.Platform)
}

func currentVersion() buildVersion { return readBuildVersion(debug.ReadBuildInfo()) }

// newVersionCmd is `zdps version`: the module version, commit and Go
// version of this binary, for bug reports and fleet inventories.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := currentVersion()
			if f := cmd.Flags().Lookup("output"); f != nil && f.Value.String() == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), v)
			return err
		},
	}
}

// setVersionFlag gives root a --version flag that prints the same line as
// `zdps version`.
func setVersionFlag(root *cobra.Command) {
	v := currentVersion()
	root.Version = strings.TrimPrefix(v.String(), "zdps ")
	root.SetVersionTemplate("zdps {{.Version}}\n")
}
