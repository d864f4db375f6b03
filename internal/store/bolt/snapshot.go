package bolt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/zdps/zdps/internal/store"
)

// ErrNotBolt: a file is not a bbolt database (or its header is damaged).
var ErrNotBolt = errors.New("bolt: not a bbolt database file")

var _ store.Snapshotter = (*Backend)(nil)

// Snapshot opens a read transaction whose WriteTo streams the whole file as
// of that moment: bbolt's copy-on-write pages keep it consistent while
// writers commit. The transaction pins the pages it sees, so the file may
// grow by what is written during the copy; Close releases them.
func (b *Backend) Snapshot(ctx context.Context) (store.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	btx, err := b.db.Begin(false)
	if err != nil {
		return nil, mapErr(err)
	}
	return &snapshot{ctx: ctx, tx: btx}, nil
}

type snapshot struct {
	ctx context.Context
	tx  *bbolt.Tx
}

func (s *snapshot) Size() int64 { return s.tx.Size() }

// WriteTo stops at the first write after ctx ends: a client that went away
// must not keep the read transaction (and its pages) for the whole copy.
func (s *snapshot) WriteTo(w io.Writer) (int64, error) {
	return s.tx.WriteTo(ctxWriter{ctx: s.ctx, w: w})
}

func (s *snapshot) Close() error { return s.tx.Rollback() }

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Info describes a bbolt file that passed Inspect.
type Info struct {
	// Size of the file in bytes.
	Size int64
	// Keys per bucket, for buckets holding at least one.
	Keys map[store.Bucket]int
}

// Inspect opens the file at path read-only, runs Check's consistency check
// on it and counts its keys. It fails with ErrNotBolt for a file that is
// not a bbolt database and ErrLocked when a process (zdps serve) holds it
// longer than lockTimeout.
func Inspect(path string, lockTimeout time.Duration) (Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %s is not a regular file", ErrNotBolt, path)
	}
	db, err := openExisting(path, lockTimeout, true)
	if err != nil {
		return Info{}, err
	}
	defer db.Close()
	info := Info{Size: fi.Size(), Keys: map[store.Bucket]int{}}
	err = db.View(func(btx *bbolt.Tx) error {
		if err := checkTx(btx); err != nil {
			return fmt.Errorf("bolt: consistency check of %s: %w", path, err)
		}
		return btx.ForEach(func(name []byte, bk *bbolt.Bucket) error {
			if n := bk.Stats().KeyN; n > 0 {
				info.Keys[store.Bucket(name)] = n
			}
			return nil
		})
	})
	return info, err
}

// openExisting opens a bbolt file that must exist, without creating or
// waiting forever, and words the failures for a person.
func openExisting(path string, lockTimeout time.Duration, readOnly bool) (*bbolt.DB, error) {
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, ReadOnly: readOnly, FreelistType: bbolt.FreelistMapType})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (waited %s)", ErrLocked, path, lockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %s: %w", ErrNotBolt, path, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, err
	case err != nil:
		// bbolt reports a file shorter than its header in its own words.
		return nil, fmt.Errorf("%w: %s: %w", ErrNotBolt, path, err)
	}
	return db, nil
}
