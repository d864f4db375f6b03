package opscmd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"

	"github.com/zdps/zdps/cmd/zdps/internal/storespec"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
)

// NewRestoreCmd is `zdps restore`.
func NewRestoreCmd(g *cmdutil.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Put a backup (zdps backup) into a new, empty data directory",
		Long: `Check that FILE is a bbolt file with a clean consistency check that holds a
zdps store, then copy it to <data-dir>/` + storespec.DBFile + ` (through a synced temporary
file). The data directory (--data-dir) must be empty or absent: restore never
replaces a store. No server runs during a restore; start one on the directory
afterwards.

The backup holds the CA with its key encrypted under the key-encryption key,
which is not in the backup, on purpose: start the restored server with the
original's KEK (--kek-file pointing at the original's kek file, or the same
--kek-passphrase). The owner connection string is in the store; the server
writes it to <data-dir>/` + cmdutil.ConnectionStringFile + ` when it starts.

  zdps restore --data-dir /var/lib/zdps-restored /var/backups/zdps-2026-12-01.db
  zdps serve --data-dir /var/lib/zdps-restored --kek-file /etc/zdps/kek`,
		Args: cmdutil.ExactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error { return runRestore(cmd, g, args[0]) },
	}
	return cmd
}

func runRestore(cmd *cobra.Command, g *cmdutil.Globals, file string) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	dir := g.DataDir()
	if err := checkEmptyDir(dir); err != nil {
		return err
	}
	start := time.Now()
	info, err := inspectStoreFile(file)
	if err != nil {
		return err
	}
	if info.Keys[store.BucketSettings] == 0 || info.Keys[store.BucketPolicies] == 0 {
		return cmdutil.Errorf(nil, "%s is a bbolt file but holds no zdps store (no settings or policies); is it a zdps backup?", file)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cmdutil.Errorf(err, "data directory: %v", err)
	}
	src, err := os.Open(file)
	if err != nil {
		return cmdutil.Errorf(err, "%v", err)
	}
	defer src.Close()
	dst := filepath.Join(dir, storespec.DBFile)
	_, err = writeFileAtomic(dst, func(w io.Writer) (int64, error) { return io.Copy(w, src) }, func(tmp string) error {
		// The copy is what the server will open: check it, not only
		// the source.
		_, err := bolt.Inspect(tmp, time.Second)
		return err
	})
	if err != nil {
		return cmdutil.Errorf(err, "restore into %s: %v; the data directory holds no store", dir, err)
	}
	keys := totalKeys(info)
	elapsed := time.Since(start)
	return g.Printer(cmd.OutOrStdout()).Value(storeFile{File: file, Store: dst, Bytes: info.Size, Keys: keys, ElapsedSeconds: elapsed.Seconds()},
		fmt.Sprintf(`restored %s (%d keys, consistency check clean) into %s in %s

Start the server with the original's key-encryption key, which is not in the
backup (on purpose):
  zdps serve --data-dir %s --kek-file /path/to/the/original/kek
(the original's kek file is <its data directory>/kek unless it was started with
--kek-file), or with the same --kek-passphrase as the original. The owner connection string
is in the store: the server writes it to %s when it starts.`, formatBytes(info.Size), keys, dst, elapsed.Round(time.Millisecond),
			dir, filepath.Join(dir, cmdutil.ConnectionStringFile)))
}

// checkEmptyDir accepts an absent or empty directory.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return cmdutil.Errorf(err, "data directory %s: %v", dir, err)
	case len(entries) > 0:
		return cmdutil.Errorf(nil, "data directory %s is not empty (it holds %s%s); restore only into an empty or new directory (--data-dir)",
			dir, entries[0].Name(), map[bool]string{true: " and more", false: ""}[len(entries) > 1])
	}
	return nil
}

// totalKeys is the number of keys in all buckets.
func totalKeys(info bolt.Info) int {
	n := 0
	for _, k := range info.Keys {
		n += k
	}
	return n
}

// inspectStoreFile runs bolt.Inspect and words its failures.
func inspectStoreFile(file string) (bolt.Info, error) {
	info, err := bolt.Inspect(file, time.Second)
	switch {
	case errors.Is(err, bolt.ErrLocked):
		return info, cmdutil.Errorf(err, "%s is locked: is zdps serve running on it? Stop the server first (or back a running server up with zdps backup)", file)
	case errors.Is(err, bolt.ErrNotBolt):
		return info, cmdutil.Errorf(err, "%s is not a bbolt file (%v)", file, err)
	case errors.Is(err, fs.ErrNotExist):
		return info, cmdutil.Errorf(err, "%s does not exist", file)
	case err != nil:
		return info, cmdutil.Errorf(err, "%s: %v", file, err)
	}
	return info, nil
}
