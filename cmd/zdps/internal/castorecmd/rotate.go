package castorecmd

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/cmd/zdps/internal/storeopen"
	"github.com/zdps/zdps/cmd/zdps/internal/storespec"
	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/ca/rotation"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
)

// ReloadInterval is how often zdps serve looks for a rotated CA state:
// replicas switch within it of each other.
const ReloadInterval = 2 * time.Second

// rotateConfig is `zdps ca rotate`.
type rotateConfig struct {
	storeopen.Flags
	KMS                  string
	Overlap              time.Duration
	CSROut, Intermediate string
	Root                 bool
	OfflineRoot          string
}

func newRotateCmd() *cobra.Command {
	var cfg rotateConfig
	cmd := &cobra.Command{
		Use:   "rotate [--kms URI] [--overlap DURATION]",
		Short: "Replace the CA's issuing intermediate without downtime; running servers switch within seconds",
		Long: `Create a new issuing intermediate (its key in the KMS of --kms, else sealed in the
store), signed by the root key held in the store, and make it the one that issues.
Running servers on this store (every replica of a PostgreSQL store) reload the CA
within ` + ReloadInterval.String() + ` and issue from the new one; no restart.

The outgoing intermediate stays in the published bundle, with its key to sign its
CRL, for --overlap: give the longest certificate validity the servers issue
(zdps serve --cert-validity). The next rotation after that retires it. Each step is
an event in the audit trail; "zdps ca show" lists the intermediates.

With an offline root (zdps ca init --offline-root) it takes three steps: --csr-out
makes the next key (in --kms, or sealed) and writes its CSR; "zdps ca sign-intermediate"
signs it where the root key is; --intermediate-cert installs the certificate.`,
		Example: `  zdps ca rotate --data-dir /var/lib/zdps
  zdps ca rotate --store postgres://zdps@db/zdps --kek-file /etc/zdps/kek --kms 'pkcs11:token=zdps?pin-source=/etc/zdps/pin'
  # offline root
  zdps ca rotate --csr-out next.csr
  zdps ca sign-intermediate --root-cert ca-bundle.pem --root-key /media/usb/zdps-root.key --csr next.csr --out next.pem
  zdps ca rotate --intermediate-cert next.pem`,
		Args: cobra.NoArgs,
		RunE: onStore(&cfg.Flags, func(ctx context.Context, out io.Writer) error { return caRotate(ctx, cfg, out) }),
	}
	f := cmd.Flags()
	cfg.Register(f, "<data-dir>/kek")
	f.StringVar(&cfg.KMS, "kms", "", "KMS URI to create the new intermediate's key in (required when the current one is in a KMS; default: sealed in the store)")
	f.StringVar(&cfg.CSROut, "csr-out", "", "offline root, step 1: make the next intermediate's key and write its CSR (PEM) to this file")
	f.StringVar(&cfg.Intermediate, "intermediate-cert", "", "offline root, step 3: install this certificate (PEM) signed by zdps ca sign-intermediate for the pending key")
	f.BoolVar(&cfg.Root, "root", false, "rotate the root too: a new root, a new intermediate under it cross-signed by the old root (which stays trusted for --overlap)")
	f.StringVar(&cfg.OfflineRoot, "offline-root", "", "with --root: write the new root's key to this new file and keep it out of the store")
	f.DurationVar(&cfg.Overlap, "overlap", 365*24*time.Hour, "how long the outgoing intermediate stays in the bundle and signs its CRL: the longest validity of the certificates it issued")
	return cmd
}

func caRotate(ctx context.Context, cfg rotateConfig, out io.Writer) error {
	if cfg.Overlap <= 0 {
		return cmdutil.Errorf(nil, "--overlap must be positive")
	}
	if cfg.CSROut != "" && cfg.Intermediate != "" {
		return cmdutil.Errorf(nil, "--csr-out and --intermediate-cert are two steps: run them one after the other")
	}
	if cfg.Root && (cfg.CSROut != "" || cfg.Intermediate != "") {
		return cmdutil.Errorf(nil, "--root makes its own intermediate: it takes neither --csr-out nor --intermediate-cert")
	}
	if cfg.OfflineRoot != "" && !cfg.Root {
		return cmdutil.Errorf(nil, "--offline-root goes with --root (the root key of zdps ca init is written by zdps ca init --offline-root)")
	}
	spec, backend, kek, err := cfg.OpenKeyed(ctx, false)
	if errors.Is(err, bolt.ErrLocked) {
		return cmdutil.Errorf(err, "store %s is open in a running zdps serve: on the embedded store, rotate while the server is stopped (replicas on PostgreSQL rotate live)", spec)
	}
	if err != nil {
		return err
	}
	defer backend.Close()
	trail, err := audit.New(audit.Config{Backend: backend, Signer: audit.NewHMACSigner(kek), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	caCfg := ca.Config{Storage: ca.BackendStorage(backend), KEK: kek, Logger: slog.New(slog.DiscardHandler)}
	actor := "zdps ca rotate"
	if u := os.Getenv("USER"); u != "" {
		actor += " (" + u + ")"
	}
	// Runs in the rotation's own transaction.
	audited := func(ctx context.Context, tx store.Tx, steps []rotation.Step) error {
		// The published CRL is the outgoing intermediate's: re-sign.
		if err := revocation.InvalidateCRLTx(ctx, tx); err != nil {
			return err
		}
		for _, s := range steps {
			if err := trail.Record(ctx, tx, audit.Event{Action: s.Action, Outcome: audit.OutcomeSuccess, Actor: actor, Resource: s.Resource, Reason: s.Detail}); err != nil {
				return err
			}
		}
		return nil
	}
	keys, err := openKMS(ctx, cfg.KMS, cfg.DataDir)
	if err != nil {
		return err
	}
	if keys != nil {
		defer keys.Close()
		caCfg.KMS = keys
	}
	if cfg.Root {
		return caRotateRoot(ctx, cfg, caCfg, spec, audited, out)
	}
	if cfg.CSROut != "" {
		csr, err := rotation.PrepareRotation(ctx, caCfg)
		if err != nil {
			return rotateError(err, spec)
		}
		if err := os.WriteFile(cfg.CSROut, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644); err != nil {
			return cmdutil.Errorf(err, "--csr-out: %v", err)
		}
		fmt.Fprintf(out, "the next intermediate's key is pending; its CSR is in %s: sign it with zdps ca sign-intermediate, then zdps ca rotate --intermediate-cert\n", cfg.CSROut)
		return nil
	}
	var next *x509.Certificate
	if cfg.Intermediate != "" {
		b, err := os.ReadFile(cfg.Intermediate)
		if err != nil {
			return cmdutil.Errorf(err, "--intermediate-cert: %v", err)
		}
		certs, err := cmdutil.ParsePEMCertificates(b)
		if err != nil {
			return cmdutil.Errorf(err, "--intermediate-cert %s: %v", cfg.Intermediate, err)
		}
		next = certs[0]
	}
	r, err := rotation.Rotate(ctx, caCfg, rotation.RotateOptions{Overlap: cfg.Overlap, Intermediate: next, Audit: audited})
	if err != nil {
		return rotateError(err, spec)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(out, "%s %s: %s\n", s.Action, s.Resource, s.Detail)
	}
	fmt.Fprintf(out, "generation %d: %s issues now (servers switch within %s); %s stays in the bundle until %s\n",
		r.Generation, r.New.Subject, ReloadInterval, r.Old.Subject, r.KeepUntil.UTC().Format(time.RFC3339))
	return nil
}

// caRotateRoot is zdps ca rotate --root.
func caRotateRoot(ctx context.Context, cfg rotateConfig, caCfg ca.Config, spec storespec.Spec,
	audited func(context.Context, store.Tx, []rotation.Step) error, out io.Writer) error {
	rootFile, err := createOfflineRoot(cfg.OfflineRoot, cfg.DataDir)
	if err != nil {
		return err
	}
	defer rootFile.discard()
	caCfg.OfflineRoot = rootFile != nil
	r, err := rotation.RotateRoot(ctx, caCfg, rotation.RotateOptions{Overlap: cfg.Overlap, Audit: audited})
	if err != nil {
		return rotateError(err, spec)
	}
	if err := rootFile.write(r.NewRootKeyPEM); err != nil {
		return fmt.Errorf("the root was rotated but its key could not be written to %s (%w): that key is lost", cfg.OfflineRoot, err)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(out, "%s %s: %s\n", s.Action, s.Resource, s.Detail)
	}
	fmt.Fprintf(out, "generation %d: root %s and intermediate %s issue now (servers switch within %s); %s stays trusted and in the bundle until %s: give hubs and devices the new root before then\n",
		r.Generation, r.NewRoot.Subject, r.New.Subject, ReloadInterval, r.OldRoot.Subject, r.KeepUntil.UTC().Format(time.RFC3339))
	_, err = out.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.NewRoot.Raw}))
	return err
}

// rotateError is a rotation's failure as the CLI says it.
func rotateError(err error, spec storespec.Spec) error {
	switch {
	case errors.Is(err, ca.ErrNoState):
		return cmdutil.Errorf(err, "store %s holds no CA (zdps ca init or zdps serve creates one)", spec)
	case errors.Is(err, ca.ErrInvalidCA), errors.Is(err, ca.ErrKMSRequired), errors.Is(err, ca.ErrKMSMismatch), errors.Is(err, ca.ErrStateChanged), errors.Is(err, ca.ErrBadKEK):
		return cmdutil.Errorf(err, "%v", err)
	}
	return fmt.Errorf("rotate: %w", err)
}
