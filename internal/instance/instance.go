package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// ConnectionStringFile is the name of the owner connection string file in
// the data directory.
const ConnectionStringFile = "service-connection-string"

// Config of Bootstrap.
type Config struct {
	// HostName is what clients put in connection strings and SAS tokens
	// (host[:port]).
	HostName string
	// IDScope, when set, is used on first start instead of a generated one.
	IDScope string
	// Rand is the random source (crypto/rand if nil).
	Rand io.Reader
}

// Instance is what Bootstrap found or created.
type Instance struct {
	Settings         *enrollment.Settings
	Owner            *enrollment.SharedAccessPolicy
	ConnectionString string
}

// Bootstrap loads the instance's settings and owner policy, creating them
// if absent. Concurrent callers on one store end with the same values.
func Bootstrap(ctx context.Context, s *store.Store, cfg Config) (*Instance, error) {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.HostName == "" {
		return nil, errors.New("instance: empty host name")
	}
	settings, err := loadOrCreate(ctx, s.Settings, "instance", func() (*enrollment.Settings, error) {
		scope := cfg.IDScope
		if scope == "" {
			var b [4]byte
			if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
				return nil, err
			}
			scope = "0ne" + strings.ToUpper(hex.EncodeToString(b[:]))
		}
		return &enrollment.Settings{IDScope: scope, DefaultAllocationPolicy: enrollment.PolicyHashed}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("instance: settings: %w", err)
	}
	owner, err := loadOrCreate(ctx, s.Policies, enrollment.OwnerPolicyName, func() (*enrollment.SharedAccessPolicy, error) {
		p := &enrollment.SharedAccessPolicy{
			KeyName: enrollment.OwnerPolicyName,
			Rights:  strings.Join(enrollment.AllRights, ", "),
		}
		return p, p.GenerateMissingKeys(cfg.Rand)
	})
	if err != nil {
		return nil, fmt.Errorf("instance: owner policy: %w", err)
	}
	return &Instance{
		Settings:         settings,
		Owner:            owner,
		ConnectionString: ConnectionString(cfg.HostName, owner.KeyName, owner.PrimaryKey),
	}, nil
}

// loadOrCreate returns the document under id, creating it with mk when
// absent; a concurrent creator wins and its document is returned.
func loadOrCreate[T store.Document](ctx context.Context, c *store.Collection[T], id string, mk func() (T, error)) (T, error) {
	v, err := c.Get(ctx, id)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return v, err
	}
	if v, err = mk(); err != nil {
		return v, err
	}
	if _, err = c.Put(ctx, v, store.Condition{IfNoneMatch: true}); errors.Is(err, store.ErrConflict) {
		return c.Get(ctx, id)
	}
	return v, err
}

// ConnectionString formats an Azure-format service connection string.
func ConnectionString(host, keyName, key string) string {
	return "HostName=" + host + ";SharedAccessKeyName=" + keyName + ";SharedAccessKey=" + key
}

// WriteSecretFile writes data to dir/name with mode 0600, atomically, so a
// reader never sees half a file.
func WriteSecretFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}

// KEKSalt returns the salt of a passphrase-derived key-encryption key,
// creating it on first use. It lives in the store, not in a data
// directory, so that every replica sharing the store derives the same key
// from the same passphrase. A salt is not secret.
func KEKSalt(ctx context.Context, b store.Backend, rnd io.Reader) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	const bucket, key = store.Bucket("instance"), "kek-salt"
	read := func() ([]byte, error) {
		var salt []byte
		err := b.View(ctx, func(tx store.Tx) error {
			it, err := tx.Get(ctx, bucket, key)
			salt = it.Value
			return err
		})
		return salt, err
	}
	salt, err := read()
	if !errors.Is(err, store.ErrNotFound) {
		return salt, err
	}
	salt = make([]byte, 16)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return nil, err
	}
	err = b.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, bucket, key, salt, store.Condition{IfNoneMatch: true})
		return err
	})
	if errors.Is(err, store.ErrConflict) { // another replica was first
		return read()
	}
	return salt, err
}
