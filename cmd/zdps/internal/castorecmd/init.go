package castorecmd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.step.sm/crypto/pemutil"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/cmd/zdps/internal/storeopen"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/cakms"
)

// initConfig is `zdps ca init`.
type initConfig struct {
	storeopen.Flags
	KMS                   string
	KeyType, Organization string
	OfflineRoot           string
}

// AddTo adds `zdps ca init`, `zdps ca sign-intermediate` and `zdps ca
// rotate` under the root's `zdps ca`: they work on the store like `zdps
// serve`, not through the service API, so the binary adds them beside
// serve.
func AddTo(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() == "ca" {
			c.AddCommand(newInitCmd(), newSignIntermediateCmd(), newRotateCmd())
			return
		}
	}
	panic("zdps: no ca command to add init to")
}

// onStore is the RunE of a command on the store: flags from the
// environment as zdps serve takes them, the root's data directory.
func onStore(flags *storeopen.Flags, run func(context.Context, io.Writer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := cmdutil.ApplyEnvAndFile(cmd.Flags(), ""); err != nil {
			return err
		}
		flags.DataDir = cmdutil.DataDirOf(cmd)
		return run(cmd.Context(), cmd.OutOrStdout())
	}
}

// openKMS opens --kms when given; nil when not.
func openKMS(ctx context.Context, uri, dataDir string) (*cakms.Keys, error) {
	if uri == "" {
		return nil, nil
	}
	k, err := storeopen.OpenKMS(ctx, uri, dataDir)
	if err != nil {
		return nil, cmdutil.Errorf(err, "--kms: %v", err)
	}
	return k, nil
}

func newInitCmd() *cobra.Command {
	var cfg initConfig
	cmd := &cobra.Command{
		Use:   "init [--kms URI] [--offline-root FILE]",
		Short: "Create the embedded CA in the store before the first `zdps serve`: keys in a KMS, root offline",
		Long: `Create the CA (a root and an issuing intermediate) in the store that "zdps serve" will
use, instead of letting the first start create it. It refuses to replace a stored CA.

--kms creates the intermediate's key, and zdps's TLS server key, inside a KMS: the
keys never leave it and the store keeps only sealed references to them; "zdps serve"
then needs the same URI in --ca-kms. URIs:
  pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=zdps?pin-value=1234
  pkcs11:token=zdps?pin-source=/etc/zdps/pin      (a binary built with -tags pkcs11)
  tpmkms:device=/dev/tpmrm0                      (blobs in <data-dir>/tpmkms)
  azurekms:vault=zdps-ca                         (-tags azurekms; credentials from the environment)
  awskms:region=eu-west-1                        (-tags awskms)
  cloudkms:key-ring=projects/P/locations/L/keyRings/R   (-tags cloudkms)
Without --kms the keys are sealed in the store under the key-encryption key
(softkms, the default).

--offline-root writes the root's private key, once, to FILE (PKCS#8 PEM, mode 0600,
outside the data directory) and keeps it out of the store: take the file away. It
signs later intermediates with "zdps ca sign-intermediate".`,
		Example: `  zdps ca init --data-dir /var/lib/zdps --kms 'pkcs11:token=zdps?pin-source=/etc/zdps/pin' --offline-root /media/usb/zdps-root.key
  zdps serve --data-dir /var/lib/zdps --ca-kms 'pkcs11:token=zdps?pin-source=/etc/zdps/pin'`,
		Args: cobra.NoArgs,
		RunE: onStore(&cfg.Flags, func(ctx context.Context, out io.Writer) error { return caInit(ctx, cfg, out) }),
	}
	f := cmd.Flags()
	cfg.Register(f, "<data-dir>/kek, created if absent")
	f.StringVar(&cfg.KMS, "kms", "", "KMS URI to create the intermediate and TLS keys in (default: sealed in the store)")
	f.StringVar(&cfg.KeyType, "key-type", string(ca.KeyECP256), "EC-P256 or EC-P384")
	f.StringVar(&cfg.Organization, "organization", ca.DefaultOrganization, "organization in the CA certificates' subjects")
	f.StringVar(&cfg.OfflineRoot, "offline-root", "", "write the root key to this new file and keep it out of the store")
	return cmd
}

func caInit(ctx context.Context, cfg initConfig, out io.Writer) error {
	rootFile, err := createOfflineRoot(cfg.OfflineRoot, cfg.DataDir)
	if err != nil {
		return err
	}
	defer rootFile.discard()
	// The KMS first: a URI that does not work leaves nothing behind.
	k, err := openKMS(ctx, cfg.KMS, cfg.DataDir)
	if err != nil {
		return err
	}
	var keys ca.KeyStore
	if k != nil {
		defer k.Close()
		keys = k
	}
	spec, backend, kek, err := cfg.OpenKeyed(ctx, true)
	if err != nil {
		return err
	}
	defer backend.Close()
	caCfg := ca.Config{Storage: ca.BackendStorage(backend), KEK: kek, KeyType: ca.KeyType(cfg.KeyType), Organization: cfg.Organization,
		OfflineRoot: cfg.OfflineRoot != "", Logger: slog.New(slog.DiscardHandler)}
	caCfg.KMS = keys
	authority, rootKey, err := ca.Create(ctx, caCfg)
	if errors.Is(err, ca.ErrStateExists) {
		return cmdutil.Errorf(err, "store %s already holds a CA; zdps ca init never replaces one", spec)
	}
	if errors.Is(err, ca.ErrInvalidConfig) {
		return cmdutil.Errorf(err, "%v", err)
	}
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	if err := rootFile.write(rootKey); err != nil {
		// The CA exists without its root key anywhere: say so plainly.
		return fmt.Errorf("the CA was created but its root key could not be written to %s (%w): the root key is lost; no intermediate can be signed for this root", cfg.OfflineRoot, err)
	}
	// The bundle file is zdps serve's to write (its presence says the
	// server started); the root certificate is printed for the record.
	where := "sealed in the store"
	if k := authority.KMS(); k != "" {
		where = "in the " + k + " KMS (with the TLS server key)"
	}
	rootWhere := "sealed in the store"
	if cfg.OfflineRoot != "" {
		rootWhere = "written to " + cfg.OfflineRoot + " (not in the store: take it away)"
	}
	fmt.Fprintf(out, "CA created in %s\n  root:         %s, key %s\n  intermediate: %s, key %s\n",
		spec, authority.Root().Subject, rootWhere, authority.Intermediate().Subject, where)
	if cfg.KMS != "" {
		fmt.Fprintln(out, "start the server with the same URI: zdps serve --ca-kms URI")
	}
	_, err = out.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: authority.Root().Raw}))
	return err
}

// inside reports whether path is dir or below it.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// signConfig is `zdps ca sign-intermediate`.
type signConfig struct {
	RootCert, RootKey, CSR, Out string
	Validity                    time.Duration
}

func newSignIntermediateCmd() *cobra.Command {
	var cfg signConfig
	cmd := &cobra.Command{
		Use:   "sign-intermediate --root-cert FILE --root-key FILE --csr FILE --out FILE",
		Short: "Sign a new intermediate's CSR with the offline root (run where the root key is, not on the server)",
		Long: `Sign an issuing intermediate certificate for a CSR with the root key that
"zdps ca init --offline-root" wrote. It needs no server, store or network: run it
on the machine that holds the root key. The certificate gets zdps's intermediate
profile whatever the CSR asks for; only the CSR's key and subject are used.`,
		Example: `  zdps ca sign-intermediate --root-cert ca-bundle.pem --root-key /media/usb/zdps-root.key --csr new.csr --out new.pem`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return caSignIntermediate(cfg, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.RootCert, "root-cert", "", "the root certificate, PEM (a CA bundle: its self-signed certificate is used)")
	f.StringVar(&cfg.RootKey, "root-key", "", "the offline root's private key, PEM")
	f.StringVar(&cfg.CSR, "csr", "", "the new intermediate's CSR, PEM or DER")
	f.StringVar(&cfg.Out, "out", "", "file to write the intermediate certificate to (PEM; default standard output)")
	f.DurationVar(&cfg.Validity, "validity", ca.DefaultIntermediateValidity, "validity of the intermediate, capped at the root's")
	return cmd
}

func caSignIntermediate(cfg signConfig, out io.Writer) error {
	if cfg.RootCert == "" || cfg.RootKey == "" || cfg.CSR == "" {
		return cmdutil.Errorf(nil, "--root-cert, --root-key and --csr are required")
	}
	b, err := os.ReadFile(cfg.RootCert)
	if err != nil {
		return cmdutil.Errorf(err, "--root-cert: %v", err)
	}
	certs, err := cmdutil.ParsePEMCertificates(b)
	if err != nil {
		return cmdutil.Errorf(err, "--root-cert %s: %v", cfg.RootCert, err)
	}
	var root *x509.Certificate
	for _, c := range certs {
		if c.IsCA && bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			root = c
		}
	}
	if root == nil {
		return cmdutil.Errorf(nil, "--root-cert %s holds no self-signed CA certificate", cfg.RootCert)
	}
	kb, err := os.ReadFile(cfg.RootKey)
	if err != nil {
		return cmdutil.Errorf(err, "--root-key: %v", err)
	}
	k, err := pemutil.ParseKey(kb)
	clear(kb)
	if err != nil {
		return cmdutil.Errorf(nil, "--root-key %s is not a PEM private key", cfg.RootKey)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return cmdutil.Errorf(nil, "--root-key %s is not a signing key", cfg.RootKey)
	}
	csr, err := os.ReadFile(cfg.CSR)
	if err != nil {
		return cmdutil.Errorf(err, "--csr: %v", err)
	}
	if blk, _ := pem.Decode(csr); blk != nil {
		csr = blk.Bytes
	}
	inter, err := ca.SignIntermediate(root, signer, csr, cfg.Validity, time.Now())
	if err != nil {
		return cmdutil.Errorf(err, "%v", err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})
	if cfg.Out == "" {
		_, err := out.Write(p)
		return err
	}
	if err := os.WriteFile(cfg.Out, p, 0o644); err != nil {
		return cmdutil.Errorf(err, "--out: %v", err)
	}
	fmt.Fprintf(out, "intermediate %s signed by %s, valid to %s: %s\n", inter.Subject, root.Subject, inter.NotAfter.UTC().Format(time.RFC3339), cfg.Out)
	return nil
}

// offlineRootFile is where --offline-root writes a root key, once. It is
// created first and exclusively: an existing file (an earlier root) is
// never overwritten, and a failure to create it is known before any key
// exists. A nil *offlineRootFile (no --offline-root) does nothing.
type offlineRootFile struct {
	path string
	f    *os.File
}

// createOfflineRoot creates path for a root key, refusing a path inside
// the server's data directory; "" is no file (nil).
func createOfflineRoot(path, dataDir string) (*offlineRootFile, error) {
	if path == "" {
		return nil, nil
	}
	if inside(path, dataDir) {
		return nil, cmdutil.Errorf(nil, "--offline-root %s is inside the data directory %s: the root key must go where the server's data does not", path, dataDir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, cmdutil.Errorf(err, "--offline-root: %v", err)
	}
	return &offlineRootFile{path: path, f: f}, nil
}

// write writes and syncs the key, clears it from memory and closes the
// file.
func (o *offlineRootFile) write(keyPEM []byte) error {
	if o == nil || o.f == nil {
		return nil
	}
	_, err := o.f.Write(keyPEM)
	clear(keyPEM)
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	return err
}

// discard removes a file never handed a key, so no empty one is left.
func (o *offlineRootFile) discard() {
	if o == nil || o.f == nil {
		return
	}
	o.f.Close()
	os.Remove(o.path)
}
