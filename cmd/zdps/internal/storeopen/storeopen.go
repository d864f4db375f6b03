package storeopen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/cmd/zdps/internal/storespec"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/cakms"
	"github.com/zdps/zdps/internal/instance"
	"github.com/zdps/zdps/internal/store"
)

// KEKFile is the key-encryption key's file in the data directory, created
// on first start when no --kek-file names another.
const KEKFile = "kek"

// TPMKMSDir is where tpmkms keeps its key blobs (each wrapped by the TPM)
// when the URI names no storage-directory.
const TPMKMSDir = "tpmkms"

// Flags name the store and its key-encryption key: zdps serve's flags of
// the same names, which the CA commands repeat.
type Flags struct {
	DataDir, Store         string
	KEKFile, KEKPassphrase string
}

// Register adds --store, --kek-file and --kek-passphrase as the CA
// commands word them; kekFileDefault says what --kek-file defaults to.
func (f *Flags) Register(fs *pflag.FlagSet, kekFileDefault string) {
	fs.StringVar(&f.Store, "store", "", "the store of zdps serve: bolt (default), bolt:PATH or postgres://...")
	fs.StringVar(&f.KEKFile, "kek-file", "", "key-encryption key file of zdps serve (default "+kekFileDefault+")")
	fs.StringVar(&f.KEKPassphrase, "kek-passphrase", "", "derive the key-encryption key from this passphrase, as zdps serve --kek-passphrase")
}

// Open opens the store of --store. With create (zdps serve, ca init) it
// makes the data directory and a missing bolt file; without, the data
// directory must exist unless --store names the store elsewhere. The spec
// is returned with an error from opening, for the caller's message.
func (f Flags) Open(ctx context.Context, create bool) (storespec.Spec, store.Backend, error) {
	if create {
		if err := os.MkdirAll(f.DataDir, 0o700); err != nil {
			return storespec.Spec{}, nil, fmt.Errorf("data directory: %w", err)
		}
	} else if _, err := os.Stat(f.DataDir); err != nil && f.Store == "" {
		return storespec.Spec{}, nil, cmdutil.Errorf(err, "data directory %s: %v", f.DataDir, err)
	}
	spec, err := storespec.Parse(f.Store, f.DataDir)
	if err != nil {
		return spec, nil, fmt.Errorf("--store: %w", err)
	}
	backend, err := storespec.Open(ctx, spec, storespec.Options{CreateBolt: create})
	if err != nil {
		return spec, nil, fmt.Errorf("open store %s: %w", spec, err)
	}
	return spec, backend, nil
}

// OpenKeyed is Open and then KEK: the store and the key that seals its
// secrets. The backend is closed when the key fails.
func (f Flags) OpenKeyed(ctx context.Context, create bool) (storespec.Spec, store.Backend, []byte, error) {
	spec, backend, err := f.Open(ctx, create)
	if err != nil {
		return spec, nil, nil, err
	}
	kek, err := f.KEK(ctx, backend)
	if err != nil {
		backend.Close()
		return spec, nil, nil, err
	}
	return spec, backend, kek, nil
}

// KEK returns the key-encryption key from a passphrase (its salt kept in
// the store, shared by replicas) or a key file.
func (f Flags) KEK(ctx context.Context, b store.Backend) ([]byte, error) {
	if f.KEKPassphrase == "" {
		return loadOrCreateKEK(f.KEKFile, f.DataDir)
	}
	if f.KEKFile != "" {
		return nil, errors.New("--kek-file and --kek-passphrase exclude each other")
	}
	salt, err := instance.KEKSalt(ctx, b, nil)
	if err != nil {
		return nil, fmt.Errorf("KEK salt: %w", err)
	}
	return ca.KEKFromPassphrase(f.KEKPassphrase, salt)
}

// loadOrCreateKEK reads the key-encryption key, creating a random one in
// the data directory on first start when no file was named.
func loadOrCreateKEK(file, dataDir string) ([]byte, error) {
	if file == "" {
		file = filepath.Join(dataDir, KEKFile)
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return nil, err
			}
			if err := instance.WriteSecretFile(dataDir, KEKFile, []byte(hex.EncodeToString(k)+"\n")); err != nil {
				return nil, fmt.Errorf("create key-encryption key: %w", err)
			}
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 32 {
		return nil, fmt.Errorf("key-encryption key %s: want at least 32 bytes in hex", file)
	}
	return k, nil
}

// OpenKMS opens the KMS of --kms or --ca-kms; tpmkms blobs default to the
// data directory.
func OpenKMS(ctx context.Context, uri, dataDir string) (*cakms.Keys, error) {
	return cakms.Open(ctx, uri, cakms.Options{TPMStorageDir: filepath.Join(dataDir, TPMKMSDir)})
}
