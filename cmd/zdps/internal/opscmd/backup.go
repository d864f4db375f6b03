package opscmd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"

	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/pkg/client"
)

// pgDumpHint is how a PostgreSQL store is backed up and restored instead.
const pgDumpHint = `back it up with PostgreSQL's own tools instead, e.g.
  pg_dump --schema=zdps --format=custom --file=zdps.dump 'postgres://USER@HOST/DB'
and restore it with
  pg_restore --dbname='postgres://USER@HOST/DB' zdps.dump
(use the schema of your --store URL if it is not zdps)`

type backupConfig struct {
	force    bool
	progress bool
}

// NewBackupCmd is `zdps backup`.
func NewBackupCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg backupConfig
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Save a consistent snapshot of a running server's bbolt store to FILE",
		Long: `Download a consistent snapshot of the running server's store (its bbolt file as of
one moment; registrations go on meanwhile) and save it as FILE: written to
FILE.tmp, synced, checked to open as a bbolt file with a clean consistency check,
then renamed to FILE. The call needs a policy with the ServiceConfig right (the
owner's).

The snapshot holds every enrollment, registration, policy (the owner's
connection string included) and the CA, whose key stays encrypted under the
key-encryption key: keep the KEK (--kek-file, or the passphrase) apart from the
backups, and keep both, since a restore needs it. "zdps restore FILE" puts a
backup into a new data directory.

A server on PostgreSQL answers that it has no file to snapshot; back such a
store up with pg_dump --schema=zdps.

  zdps backup /var/backups/zdps-$(date +%F).db`,
		Args: cmdutil.ExactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error { return runBackup(cmd, g, cfg, args[0]) },
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.force, "force", false, "replace FILE if it exists")
	cmdutil.ProgressFlag(f, &cfg.progress)
	return cmd
}

func runBackup(cmd *cobra.Command, g *cmdutil.Globals, cfg backupConfig, file string) error {
	c, err := g.Ready()
	if err != nil {
		return err
	}
	if _, err := os.Stat(file); err == nil && !cfg.force {
		return cmdutil.Errorf(nil, "%s exists; choose another name, remove it or pass --force", file)
	}
	ctx := cmd.Context()
	start := time.Now()
	b, err := c.Backup(ctx)
	switch {
	case errors.Is(err, client.ErrBackupUnsupported):
		return cmdutil.Errorf(err, "the server's store is not a bbolt file (it is PostgreSQL): %s", pgDumpHint)
	case err != nil:
		return cmdutil.Fail(err, "store", "backup", "back up")
	}
	defer b.Body.Close()
	var bar *byteBar
	if g.DrawProgress(cmd, cfg.progress) {
		bar = newByteBar(cmd, "backup ", b.Size)
	}
	body := io.Reader(b.Body)
	if bar != nil {
		body = bar.reader(body)
	}
	var info bolt.Info
	_, err = writeFileAtomic(file, func(w io.Writer) (int64, error) {
		n, err := io.Copy(w, body)
		if err == nil && n != b.Size {
			err = fmt.Errorf("got %d bytes of %d", n, b.Size)
		}
		if bar != nil {
			bar.Finish(err == nil)
		}
		return n, err
	}, func(tmp string) error {
		var err error
		if info, err = bolt.Inspect(tmp, time.Second); err != nil {
			return fmt.Errorf("the downloaded snapshot does not check clean: %w", err)
		}
		return nil
	})
	if err != nil {
		return cmdutil.Errorf(err, "backup: %v; %s was left as it was", err, file)
	}
	elapsed := time.Since(start)
	keys := totalKeys(info)
	return g.Printer(cmd.OutOrStdout()).Value(storeFile{File: file, Bytes: info.Size, Keys: keys, ElapsedSeconds: elapsed.Seconds()},
		fmt.Sprintf("backup of %s (%d keys in %d buckets, consistency check clean) written to %s in %s",
			formatBytes(info.Size), keys, len(info.Keys), file, elapsed.Round(time.Millisecond)))
}

// writeFileAtomic writes path through path.tmp: write, fsync, close,
// verify (when not nil) the complete temporary file, rename, fsync of the
// directory. A failure removes the temporary file and leaves path as it
// was.
func writeFileAtomic(path string, write func(io.Writer) (int64, error), verify func(tmp string) error) (n int64, err error) {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if n, err = write(f); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, err
	}
	if err = f.Close(); err != nil {
		return n, err
	}
	if verify != nil {
		if err = verify(tmp); err != nil {
			return n, err
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return n, err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return n, err
	}
	defer d.Close()
	return n, d.Sync()
}

// byteBar draws bytes done out of a known total on stderr, and what is
// being worked on (setLabel) when there is something to say.
type byteBar struct {
	*cmdutil.Bar
	label atomic.Pointer[string]
}

func (b *byteBar) setLabel(s string) { b.label.Store(&s) }

func newByteBar(cmd *cobra.Command, name string, total int64) *byteBar {
	b := &byteBar{}
	label := decor.Any(func(decor.Statistics) string {
		if l := b.label.Load(); l != nil {
			return " " + *l
		}
		return ""
	})
	b.Bar = cmdutil.NewBar(cmd, name, total, []decor.Decorator{label},
		[]decor.Decorator{decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace)})
	return b
}

func (b *byteBar) reader(r io.Reader) io.Reader { return barReader{r: r, bar: b.Bar.Bar} }

type barReader struct {
	r   io.Reader
	bar *mpb.Bar
}

func (br barReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	br.bar.IncrBy(n)
	return n, err
}

// formatBytes is n in binary units, e.g. "3.2 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// storeFile is what backup and restore print as JSON: the store file
// written, its size and keys, and how long it took.
type storeFile struct {
	File string `json:"file"`
	// Store is where restore put it (backup: none).
	Store          string  `json:"store,omitempty"`
	Bytes          int64   `json:"bytes"`
	Keys           int     `json:"keys"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
}
