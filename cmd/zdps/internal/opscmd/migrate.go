package opscmd

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vbauerster/mpb/v8/decor"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"

	"github.com/zdps/zdps/cmd/zdps/internal/storespec"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/storecopy"
)

type migrateConfig struct {
	from, to  string
	batchSize int
	progress  bool
}

// NewMigrateCmd is `zdps migrate`.
func NewMigrateCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg migrateConfig
	cmd := &cobra.Command{
		Use:   "migrate --from STORE --to STORE",
		Short: "Copy all of zdps's state from one store to another (bbolt to PostgreSQL, or back)",
		Long: `Copy every bucket, key, value and ETag from one store into another, empty one,
then verify the copy: per bucket, the number of keys and a digest of the content
on both sides. Any difference makes the command fail.

A STORE is "bolt" (the zdps.db file in --data-dir), "bolt:PATH" (a bbolt file, or
a data directory holding zdps.db), or a postgres:// URL (its optional "schema"
parameter names the schema, default zdps).

Stop every zdps serve using the source first: a bbolt file is locked while
served, and a PostgreSQL source must not change during the copy. The CA key
and the device and policy keys stay encrypted under the KEK, byte for byte;
start the new store's zdps with the same --kek-file or --kek-passphrase (its
salt is copied with the store).

  zdps migrate --from bolt:/var/lib/zdps --to 'postgres://zdps@db/zdps'
  zdps migrate --from 'postgres://zdps@db/zdps' --to bolt:/var/lib/zdps-new/zdps.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMigrate(cmd, g, cfg) },
	}
	f := cmd.Flags()
	f.StringVar(&cfg.from, "from", "", "source store (required)")
	f.StringVar(&cfg.to, "to", "", "destination store, empty or absent (required)")
	f.IntVar(&cfg.batchSize, "batch-size", storecopy.DefaultBatchSize, "keys per transaction")
	cmdutil.ProgressFlag(f, &cfg.progress)
	return cmd
}

func runMigrate(cmd *cobra.Command, g *cmdutil.Globals, cfg migrateConfig) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	if cfg.from == "" || cfg.to == "" {
		return cmdutil.Errorf(nil, "both --from and --to are needed (see --help)")
	}
	if cfg.batchSize <= 0 {
		return cmdutil.Errorf(nil, "--batch-size must be positive")
	}
	ctx := cmd.Context()
	dataDir := g.DataDir()
	fromSpec, err := storespec.Parse(cfg.from, dataDir)
	if err != nil {
		return cmdutil.Errorf(err, "--from: %v", err)
	}
	toSpec, err := storespec.Parse(cfg.to, dataDir)
	if err != nil {
		return cmdutil.Errorf(err, "--to: %v", err)
	}
	if fromSpec == toSpec {
		return cmdutil.Errorf(nil, "--from and --to name the same store")
	}
	src, err := storespec.Open(ctx, fromSpec, storespec.Options{})
	if err != nil {
		return cmdutil.Errorf(err, "source %s: %v", fromSpec, err)
	}
	defer src.Close()
	dst, err := storespec.Open(ctx, toSpec, storespec.Options{CreateBolt: true})
	if err != nil {
		return cmdutil.Errorf(err, "destination %s: %v", toSpec, err)
	}
	defer dst.Close()

	srcSum, err := storecopy.Summarize(ctx, src, cfg.batchSize)
	if err != nil {
		return cmdutil.Errorf(err, "reading the source: %v", err)
	}
	total := 0
	for _, s := range srcSum {
		total += s.Keys
	}
	if total == 0 {
		// A mistyped schema or path opens as a new, empty store.
		return cmdutil.Errorf(nil, "source %s is empty; nothing to migrate", fromSpec)
	}
	copyCfg := storecopy.Config{BatchSize: cfg.batchSize}
	var bar *cmdutil.Bar
	if g.DrawProgress(cmd, cfg.progress) {
		bar = newCopyBar(cmd, int64(total))
		copyCfg.Progress = func(_ store.Bucket, n int) { bar.IncrBy(n) }
	}
	start := time.Now()
	n, copyErr := storecopy.Copy(ctx, dst, src, copyCfg)
	if bar != nil {
		bar.Finish(copyErr == nil)
	}
	switch {
	case errors.Is(copyErr, storecopy.ErrNotEmpty):
		return cmdutil.Errorf(copyErr, "destination %s is not empty; migrate only into an empty store (drop the schema or remove the file)", toSpec)
	case copyErr != nil:
		return cmdutil.Errorf(copyErr, "copy stopped after %d keys: %v; empty the destination and run again", n, copyErr)
	}
	dstSum, err := storecopy.Summarize(ctx, dst, cfg.batchSize)
	if err != nil {
		return cmdutil.Errorf(err, "reading the destination back: %v", err)
	}
	cmp, verr := storecopy.Compare(srcSum, dstSum)
	if err := printMigration(g.Printer(cmd.OutOrStdout()), fromSpec, toSpec, n, time.Since(start), cmp); err != nil {
		return err
	}
	if verr != nil {
		return cmdutil.Errorf(verr, "verification failed: %v", verr)
	}
	return nil
}

func printMigration(p cmdutil.Printer, from, to storespec.Spec, n int, elapsed time.Duration, cmp []storecopy.Comparison) error {
	if p.JSON {
		type bucket struct {
			Bucket      store.Bucket `json:"bucket"`
			SourceKeys  int          `json:"sourceKeys"`
			DestKeys    int          `json:"destinationKeys"`
			SameContent bool         `json:"sameContent"`
		}
		v := struct {
			From           string   `json:"from"`
			To             string   `json:"to"`
			Copied         int      `json:"copied"`
			ElapsedSeconds float64  `json:"elapsedSeconds"`
			Buckets        []bucket `json:"buckets"`
		}{From: from.String(), To: to.String(), Copied: n, ElapsedSeconds: elapsed.Seconds(), Buckets: []bucket{}}
		for _, c := range cmp {
			v.Buckets = append(v.Buckets, bucket{c.Bucket, c.SourceKeys, c.DestKeys, c.SameContent})
		}
		return p.PrintJSON(v)
	}
	t := p.Table("BUCKET", "SOURCE", "DESTINATION", "CHECK")
	for _, c := range cmp {
		check := "ok"
		switch {
		case c.SourceKeys != c.DestKeys:
			check = "COUNT MISMATCH"
		case !c.SameContent:
			check = "CONTENT MISMATCH"
		}
		t.Row(string(c.Bucket), fmt.Sprint(c.SourceKeys), fmt.Sprint(c.DestKeys), check)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(p.W, "copied %d keys from %s to %s in %s\n", n, from, to, elapsed.Round(time.Millisecond))
	return err
}

// newCopyBar draws keys copied out of the source's total on stderr.
func newCopyBar(cmd *cobra.Command, total int64) *cmdutil.Bar {
	return cmdutil.NewBar(cmd, "migrate ", total, nil, []decor.Decorator{decor.CountersNoUnit("%d / %d keys", decor.WCSyncSpace)})
}
