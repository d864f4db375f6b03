package secopscmd

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/dps"
)

// NewPostureCmd is `zdps posture`.
func NewPostureCmd(g *cmdutil.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "posture",
		Short: "Score the service's security posture and list what to fix, most severe first",
		Args:  cobra.NoArgs,
		RunE:  g.Run(cmdutil.Fetch((*client.Client).Posture, cmdutil.FailCall("read the security posture"), cmdutil.JSONOr(printPosture))),
	}
}

// printPosture is the text of `zdps posture`.
func printPosture(p cmdutil.Printer, rep *dps.PostureReport) error {
	w := p.W
	fmt.Fprintf(w, "Score: %d/100\n", rep.Score)
	if len(rep.Findings) == 0 {
		_, err := fmt.Fprintln(w, "No findings.")
		return err
	}
	fmt.Fprintln(w)
	// Served order (most severe first) is kept; the example and
	// remedy go under the title so long commands stay readable.
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tCOUNT\tTITLE")
	for _, f := range rep.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Severity, strconv.Itoa(f.Count), f.Title)
		if f.Example != "" {
			fmt.Fprintf(tw, "\t\t  example: %s\n", f.Example)
		}
		if f.Remedy != "" {
			fmt.Fprintf(tw, "\t\t  remedy:  %s\n", f.Remedy)
		}
	}
	return tw.Flush()
}
