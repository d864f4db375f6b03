package opscmd

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"

	"github.com/zdps/zdps/cmd/zdps/internal/storespec"
	"github.com/zdps/zdps/internal/store/bolt"
)

type compactConfig struct {
	noBackup bool
	progress bool
}

// NewCompactCmd is `zdps compact`.
func NewCompactCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg compactConfig
	cmd := &cobra.Command{
		Use:   "compact [FILE]",
		Short: "Rewrite a stopped server's bbolt file to its live size",
		Long: `bbolt reuses the pages that deletes free but never gives them back to the file
system, so a store that once held much more (churn, a cleanup of old
registrations) keeps its largest size. compact copies the live data of FILE
(default <data-dir>/` + storespec.DBFile + `) into a new file, checks it, keeps the original as
FILE.bak and renames the copy over FILE. A crash at any point leaves the original
or the checked copy at FILE, never a half-written file.

Stop zdps serve first: it holds the file's lock, and compact refuses a locked
file. Once the server runs fine on the compacted file, remove FILE.bak.

  zdps compact --data-dir /var/lib/zdps`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := filepath.Join(g.DataDir(), storespec.DBFile)
			if len(args) == 1 {
				file = args[0]
			}
			return runCompact(cmd, g, cfg, file)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.noBackup, "no-backup", false, "do not keep the original as FILE.bak")
	cmdutil.ProgressFlag(f, &cfg.progress)
	return cmd
}

func runCompact(cmd *cobra.Command, g *cmdutil.Globals, cfg compactConfig, file string) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	opts := bolt.CompactOptions{LockTimeout: time.Second, NoBackup: cfg.noBackup}
	var bar *byteBar
	if g.DrawProgress(cmd, cfg.progress) {
		var done int64
		opts.Progress = func(p bolt.CompactProgress) {
			if bar == nil {
				bar = newByteBar(cmd, "compact ", max(p.Total, 1))
			}
			bar.setLabel("bucket " + p.Bucket)
			bar.IncrInt64(p.Done - done)
			done = p.Done
		}
	}
	start := time.Now()
	res, err := bolt.CompactFile(cmd.Context(), file, opts)
	if bar != nil {
		bar.Finish(err == nil)
	}
	switch {
	case errors.Is(err, bolt.ErrLocked):
		return cmdutil.Errorf(err, "%s is locked: is zdps serve running? Stop it first; compact needs the server stopped", file)
	case errors.Is(err, bolt.ErrBackupExists):
		return cmdutil.Errorf(err, "%s.bak exists (the original kept by an earlier compaction?); move or remove it, or pass --no-backup", file)
	case errors.Is(err, bolt.ErrNotBolt):
		return cmdutil.Errorf(err, "%s is not a bbolt file (%v)", file, err)
	case errors.Is(err, fs.ErrNotExist):
		return cmdutil.Errorf(err, "%s does not exist (pass the file, or --data-dir)", file)
	case err != nil:
		return cmdutil.Errorf(err, "compact %s: %v; the original is unchanged", file, err)
	}
	p := g.Printer(cmd.OutOrStdout())
	if p.JSON {
		return p.PrintJSON(struct {
			File           string  `json:"file"`
			BytesBefore    int64   `json:"bytesBefore"`
			BytesAfter     int64   `json:"bytesAfter"`
			Keys           int     `json:"keys"`
			Backup         string  `json:"backup,omitempty"`
			ElapsedSeconds float64 `json:"elapsedSeconds"`
		}{file, res.Before, res.After, res.Keys, res.Backup, time.Since(start).Seconds()})
	}
	saved := 0.0
	if res.Before > 0 {
		saved = 100 * float64(res.Before-res.After) / float64(res.Before)
	}
	if _, err := fmt.Fprintf(p.W, "%s: %s → %s (%.0f%% smaller), %d keys, in %s\n", file,
		formatBytes(res.Before), formatBytes(res.After), saved, res.Keys, time.Since(start).Round(time.Millisecond)); err != nil {
		return err
	}
	if res.Backup != "" {
		_, err = fmt.Fprintf(p.W, "the original is kept as %s; remove it once zdps serve runs fine on the compacted file\n", res.Backup)
	}
	return err
}
