package bolt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// ErrBackupExists: CompactFile would keep the original as PATH.bak, and a
// file of that name is already there (an earlier compaction's original,
// perhaps the only good copy left); it is not overwritten.
var ErrBackupExists = errors.New("bolt: the backup of the original already exists")

// DefaultCompactTxSize is how many bytes of keys and values one transaction
// of CompactFile copies before it commits, bounding its memory.
const DefaultCompactTxSize = 64 << 20

// CompactOptions tune CompactFile.
type CompactOptions struct {
	// LockTimeout bounds the wait for the file lock; zero means
	// DefaultLockTimeout. A running zdps serve holds the lock, so a short
	// timeout turns "server running" into ErrLocked quickly.
	LockTimeout time.Duration
	// TxSize is the bytes copied per transaction; zero means
	// DefaultCompactTxSize.
	TxSize int64
	// NoBackup removes the original instead of keeping it as PATH.bak.
	NoBackup bool
	// Progress, when set, is called after each bucket and each commit,
	// from the calling goroutine.
	Progress func(CompactProgress)
}

// CompactProgress is how far CompactFile got.
type CompactProgress struct {
	// Bucket being copied.
	Bucket string
	// Done and Total are bytes of keys and values.
	Done, Total int64
}

// CompactResult is what CompactFile did.
type CompactResult struct {
	// Before and After are the file sizes in bytes.
	Before, After int64
	// Keys copied, over all buckets.
	Keys int
	// Backup is where the original was kept ("" with NoBackup).
	Backup string
}

// CompactFile rewrites the bbolt file at path to hold only its live data:
// bbolt reuses freed pages but never returns them to the file system, so a
// store that once held much more than it does now stays that size.
//
// The copy goes to PATH.compact (synced, then checked), the original is
// kept as PATH.bak (a hard link, or a rename where links are unsupported)
// and the copy is renamed over PATH, all while CompactFile holds the
// original's lock, so no server can open and write the original midway.
// A crash leaves either the original at PATH or the checked copy, never a
// half-written file. A held lock fails with ErrLocked.
func CompactFile(ctx context.Context, path string, opts CompactOptions) (CompactResult, error) {
	var res CompactResult
	txSize := opts.TxSize
	if txSize <= 0 {
		txSize = DefaultCompactTxSize
	}
	bak := path + ".bak"
	if !opts.NoBackup {
		if _, err := os.Lstat(bak); err == nil {
			return res, fmt.Errorf("%w: %s", ErrBackupExists, bak)
		}
	}
	src, err := openExisting(path, opts.LockTimeout, false)
	if err != nil {
		return res, err
	}
	defer src.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return res, err
	}
	res.Before = fi.Size()

	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	// Commits skip fsync; one Sync at the end makes the whole copy
	// durable before it replaces anything.
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return res, fmt.Errorf("bolt: create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = dst.Close()
			_ = os.Remove(tmp)
		}
	}()
	keys, err := copyAll(ctx, dst, src, txSize, opts.Progress)
	if err != nil {
		return res, err
	}
	res.Keys = keys
	if err := dst.Sync(); err != nil {
		return res, fmt.Errorf("bolt: sync %s: %w", tmp, err)
	}
	if err := dst.View(checkTx); err != nil {
		return res, fmt.Errorf("bolt: consistency check of the copy: %w", err)
	}
	if err := dst.Close(); err != nil {
		return res, err
	}
	if !opts.NoBackup {
		if err := os.Link(path, bak); err != nil {
			// No hard links here: move the original aside; a crash
			// before the next rename leaves it at PATH.bak, intact.
			if err := os.Rename(path, bak); err != nil {
				return res, fmt.Errorf("bolt: keep the original as %s: %w", bak, err)
			}
		}
		res.Backup = bak
	}
	if err := os.Rename(tmp, path); err != nil {
		return res, fmt.Errorf("bolt: replace %s: %w", path, err)
	}
	ok = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return res, err
	}
	if fi, err := os.Stat(path); err == nil {
		res.After = fi.Size()
	}
	return res, nil
}

// copyAll copies every bucket (nested ones too, with their sequences) of
// src into the empty dst, committing every txSize bytes.
func copyAll(ctx context.Context, dst, src *bbolt.DB, txSize int64, progress func(CompactProgress)) (int, error) {
	if progress == nil {
		progress = func(CompactProgress) {}
	}
	keys := 0
	err := src.View(func(stx *bbolt.Tx) error {
		var total int64
		err := stx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			total += bucketBytes(b)
			return nil
		})
		if err != nil {
			return err
		}
		p := CompactProgress{Total: total}
		dtx, err := dst.Begin(true)
		if err != nil {
			return err
		}
		defer func() { _ = dtx.Rollback() }()
		var pending int64
		// path leads from the root to the bucket being filled; it is
		// looked up again after each commit, which ends the old handles.
		var walk func(path [][]byte, sb *bbolt.Bucket) error
		bucketIn := func(path [][]byte) *bbolt.Bucket {
			b := dtx.Bucket(path[0])
			for _, name := range path[1:] {
				b = b.Bucket(name)
			}
			b.FillPercent = 1.0 // keys arrive in order: fill every page
			return b
		}
		walk = func(path [][]byte, sb *bbolt.Bucket) error {
			db := bucketIn(path)
			if err := db.SetSequence(sb.Sequence()); err != nil {
				return err
			}
			return sb.ForEach(func(k, v []byte) error {
				if v == nil {
					if _, err := db.CreateBucket(k); err != nil {
						return err
					}
					if err := walk(append(path[:len(path):len(path)], k), sb.Bucket(k)); err != nil {
						return err
					}
					db = bucketIn(path) // the nested copy may have committed
					return nil
				}
				if pending > 0 && pending+int64(len(k)+len(v)) > txSize {
					if err := ctx.Err(); err != nil {
						return err
					}
					if err := dtx.Commit(); err != nil {
						return err
					}
					var err error
					if dtx, err = dst.Begin(true); err != nil {
						return err
					}
					pending = 0
					db = bucketIn(path)
					progress(p)
				}
				if err := db.Put(k, v); err != nil {
					return err
				}
				n := int64(len(k) + len(v))
				pending += n
				p.Done += n
				keys++
				return nil
			})
		}
		err = stx.ForEach(func(name []byte, sb *bbolt.Bucket) error {
			p.Bucket = string(name)
			progress(p)
			if _, err := dtx.CreateBucket(name); err != nil {
				return err
			}
			if err := walk([][]byte{name}, sb); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
			progress(p)
			return nil
		})
		if err != nil {
			return err
		}
		return dtx.Commit()
	})
	return keys, err
}

// bucketBytes sums the keys and values of b and its nested buckets.
func bucketBytes(b *bbolt.Bucket) int64 {
	var n int64
	_ = b.ForEach(func(k, v []byte) error {
		if v == nil {
			n += bucketBytes(b.Bucket(k))
			return nil
		}
		n += int64(len(k) + len(v))
		return nil
	})
	return n
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("bolt: sync directory %s: %w", dir, err)
	}
	return nil
}
