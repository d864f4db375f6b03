package devicecmd

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/attestation/dice/dicesim"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// NewDiceCmd is `zdps dice`.
func NewDiceCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "dice", "TCG DICE helpers: simulate a DICE device's certificate chain", nil, newDiceSimulateCmd)
}

// diceSimulateConfig is the configuration of `zdps dice simulate`.
type diceSimulateConfig struct {
	RegistrationID string
	Out            string
	CACert, CAKey  string
	UDS            string
	Vendor, Model  string
	Version        string
	// FWIDs are LAYER=HEX (SHA-256 digests), Firmware LAYER=FILE, SVNs
	// LAYER=N.
	FWIDs      []string
	Firmware   []string
	SVNs       []string
	Flags      []string
	Multi      bool
	LegacyRIoT bool
	Critical   bool
}

func newDiceSimulateCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg diceSimulateConfig
	cmd := &cobra.Command{
		Use:   "simulate --registration-id ID [flags]",
		Short: "Build a simulated DICE chain (root, DeviceID, Alias with TcbInfo) as PEM files",
		Long: `Build the certificate chain a TCG DICE device presents, for tests, demos and benchmarks:

  root (manufacturer CA) → DeviceID certificate → Alias certificate (CN = registration ID)

The DeviceID key is derived from the device secret (--uds) and the layer 0 measurement, so it
stays the same across firmware updates of the later layers; the Alias key is derived from
every measurement, so new firmware gives a new Alias certificate. Layer 0 is stated in a
DiceTcbInfo of the DeviceID certificate (with a DiceUeid); layers 1 and up in the Alias
certificate, as a DiceTcbInfo for one layer or a DiceMultiTcbInfo for several (or --multi).

Files written into --out: alias-chain.pem (Alias then DeviceID: what the device presents in
TLS), alias.key (PKCS#8, mode 0600), deviceid.pem, uds.hex (0600) when the secret was
generated, and root.pem/root.key when no CA was given and none is there yet. Running it
again into the same directory keeps the root and the device secret: that is a firmware
update of the same device.

Register the device with:  zdps device register --cert OUT/alias-chain.pem --key-file OUT/alias.key
This is a simulator: its keys are files, not device secrets. Never use it for production.`,
		Example: `  zdps dice simulate --registration-id dice-dev-1 --out dev1 --vendor acme --model board-7 \
      --firmware 1=firmware-v3.bin --svn 1=3
  zdps group create dice-fleet --attestation x509 --cert dev1/root.pem
  zdps group set-firmware-policy dice-fleet --vendor acme --allow-fwid 1=sha256:$(sha256sum firmware-v3.bin | cut -c1-64) --min-svn 1=3
  zdps device register --cert dev1/alias-chain.pem --key-file dev1/alias.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDiceSimulate(cmd, g, cfg) },
	}
	f := cmd.Flags()
	f.StringVar(&cfg.RegistrationID, "registration-id", "", "registration ID, the Alias certificate's CN (required)")
	f.StringVar(&cfg.Out, "out", ".", "directory for the files")
	f.StringVar(&cfg.CACert, "ca-cert", "", "PEM manufacturer CA certificate to issue the DeviceID certificate (default: <out>/root.pem, created when missing)")
	f.StringVar(&cfg.CAKey, "ca-key", "", "PEM private key (ECDSA) of --ca-cert")
	f.StringVar(&cfg.UDS, "uds", "", "device secret, hex, at least 16 bytes (default: <out>/uds.hex, generated when missing)")
	f.StringVar(&cfg.Vendor, "vendor", "zdps-sim", "vendor stated in every TcbInfo")
	f.StringVar(&cfg.Model, "model", "sim-board", "model stated in every TcbInfo")
	f.StringVar(&cfg.Version, "fw-version", "", "version string stated in every TcbInfo")
	f.StringArrayVar(&cfg.FWIDs, "fwid", nil, "LAYER=HEX: the SHA-256 FWID of a layer (repeatable)")
	f.StringArrayVar(&cfg.Firmware, "firmware", nil, "LAYER=FILE: measure a firmware image for a layer (repeatable)")
	f.StringArrayVar(&cfg.SVNs, "svn", nil, "LAYER=N: the security version number of a layer (repeatable; default 1)")
	f.StringSliceVar(&cfg.Flags, "flag", nil, "operational flags set in every TcbInfo: notConfigured, notSecure, recovery, debug")
	f.BoolVar(&cfg.Multi, "multi", false, "state the Alias layers in a DiceMultiTcbInfo even when there is one")
	f.BoolVar(&cfg.LegacyRIoT, "legacy-riot", false, "put a legacy Microsoft RIoT CompositeDeviceID into the Alias instead of a TcbInfo")
	f.BoolVar(&cfg.Critical, "critical", true, "mark the DICE extensions critical")
	return cmd
}

// layerSpec parses LAYER=VALUE.
func layerSpec(flag, spec string) (int64, string, error) {
	l, v, ok := strings.Cut(spec, "=")
	n, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
	if !ok || err != nil || n < 0 || v == "" {
		return 0, "", cmdutil.Errorf(err, "--%s %q: want LAYER=VALUE with a layer number >= 0", flag, spec)
	}
	return n, v, nil
}

func runDiceSimulate(cmd *cobra.Command, g *cmdutil.Globals, cfg diceSimulateConfig) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	if err := enrollment.ValidateRegistrationID(cfg.RegistrationID); err != nil {
		return cmdutil.Errorf(err, "--registration-id: %v", err)
	}
	if len(cfg.RegistrationID) > 64 {
		return cmdutil.Errorf(nil, "--registration-id: a certificate CN has at most 64 characters")
	}
	if (cfg.CACert == "") != (cfg.CAKey == "") {
		return cmdutil.Errorf(nil, "--ca-cert and --ca-key go together")
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return cmdutil.Errorf(err, "--out: %v", err)
	}

	// Measurements by layer.
	fwids := map[int64]dice.FWID{}
	for _, s := range cfg.FWIDs {
		l, v, err := layerSpec("fwid", s)
		if err != nil {
			return err
		}
		d, err := hex.DecodeString(v)
		if err != nil || len(d) != 32 {
			return cmdutil.Errorf(err, "--fwid %q: want 64 hex digits (a SHA-256 digest)", s)
		}
		fwids[l] = dice.FWID{HashAlg: dicesim.OIDSHA256, Digest: d}
	}
	for _, s := range cfg.Firmware {
		l, file, err := layerSpec("firmware", s)
		if err != nil {
			return err
		}
		img, err := os.ReadFile(file)
		if err != nil {
			return cmdutil.Errorf(err, "--firmware: %v", err)
		}
		fwids[l] = dicesim.Measure(img)
	}
	if len(fwids) == 0 {
		fwids[0] = dicesim.Measure([]byte("zdps-sim DICE engine v1"))
		fwids[1] = dicesim.Measure([]byte("zdps-sim firmware v1"))
	}
	svns := map[int64]int64{}
	for _, s := range cfg.SVNs {
		l, v, err := layerSpec("svn", s)
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return cmdutil.Errorf(err, "--svn %q: want LAYER=N with N >= 0", s)
		}
		svns[l] = n
	}
	var flags []byte
	bits := 0
	for _, f := range cfg.Flags {
		i := slices.IndexFunc(dice.FlagNames[:], func(n string) bool { return strings.EqualFold(n, f) })
		if i < 0 {
			return cmdutil.Errorf(nil, "--flag %q: use notConfigured, notSecure, recovery or debug", f)
		}
		if flags == nil {
			flags = []byte{0}
		}
		flags[0] |= 0x80 >> i
		bits = max(bits, i+1)
	}
	layers := slices.Sorted(func(yield func(int64) bool) {
		for l := range fwids {
			if !yield(l) {
				return
			}
		}
	})
	dev := dicesim.Device{RegistrationID: cfg.RegistrationID, Multi: cfg.Multi, LegacyRIoT: cfg.LegacyRIoT, Critical: cfg.Critical}
	for _, l := range layers {
		svn, ok := svns[l]
		if !ok {
			svn = 1
		}
		t := dice.TcbInfo{Vendor: cfg.Vendor, Model: cfg.Model, Version: cfg.Version, SVN: &svn, Layer: &l, FWIDs: []dice.FWID{fwids[l]}}
		if flags != nil {
			t.Flags.Bytes, t.Flags.BitLength = slices.Clone(flags), bits
		}
		if l == 0 {
			dev.DeviceIDTcbInfo = &t
		} else {
			dev.AliasTcbInfos = append(dev.AliasTcbInfos, t)
		}
	}
	for l := range svns {
		if _, ok := fwids[l]; !ok {
			return cmdutil.Errorf(nil, "--svn for layer %d, which has no --fwid or --firmware", l)
		}
	}

	uds, generatedUDS, err := deviceSecret(cfg)
	if err != nil {
		return err
	}
	dev.UDS = uds
	ueid := sha256.Sum256(append([]byte("zdps dicesim UEID "), uds...))
	dev.UEID = ueid[:16] // never a part of the secret itself
	root, rootFiles, err := simulatorRoot(cfg)
	if err != nil {
		return err
	}
	chain, err := dicesim.Build(root, dev)
	if err != nil {
		return cmdutil.Errorf(err, "build the chain: %v", err)
	}
	if err := chain.WriteFiles(cfg.Out); err != nil {
		return cmdutil.Errorf(err, "write the chain: %v", err)
	}
	if generatedUDS {
		if err := os.WriteFile(filepath.Join(cfg.Out, "uds.hex"), []byte(hex.EncodeToString(uds)+"\n"), 0o600); err != nil {
			return cmdutil.Errorf(err, "write the device secret: %v", err)
		}
	}

	st, err := dice.State([]*x509.Certificate{chain.Alias.Cert, chain.DeviceID.Cert, root.Cert})
	if err != nil {
		return err
	}
	files := []string{filepath.Join(cfg.Out, "alias-chain.pem"), filepath.Join(cfg.Out, "alias.key"), filepath.Join(cfg.Out, "deviceid.pem")}
	files = append(files, rootFiles...)
	p := g.Printer(cmd.OutOrStdout())
	if p.JSON {
		return p.PrintJSON(struct {
			RegistrationID string              `json:"registrationId"`
			Files          []string            `json:"files"`
			DICE           *firmware.DICEState `json:"dice"`
		}{cfg.RegistrationID, files, st})
	}
	pairs := []string{
		"Registration ID", cfg.RegistrationID,
		"DeviceID key", st.DeviceIDKey,
		"Files", strings.Join(files, ", "),
	}
	for _, m := range st.Measurements {
		pairs = append(pairs, "Measurement", m.Describe())
	}
	pairs = append(pairs, "Register with", "zdps device register --cert "+files[0]+" --key-file "+files[1])
	return p.Details(pairs...)
}

// deviceSecret is --uds, else <out>/uds.hex, else a new random secret.
func deviceSecret(cfg diceSimulateConfig) (uds []byte, generated bool, err error) {
	s := cfg.UDS
	if s == "" {
		b, err := os.ReadFile(filepath.Join(cfg.Out, "uds.hex"))
		switch {
		case err == nil:
			s = strings.TrimSpace(string(b))
		case !errors.Is(err, fs.ErrNotExist):
			return nil, false, cmdutil.Errorf(err, "read the device secret: %v", err)
		}
	}
	if s == "" {
		uds = make([]byte, 32)
		if _, err := rand.Read(uds); err != nil {
			return nil, false, err
		}
		return uds, true, nil
	}
	uds, err = hex.DecodeString(s)
	if err != nil || len(uds) < 16 {
		return nil, false, cmdutil.Errorf(err, "device secret: want at least 32 hex digits (16 bytes)")
	}
	return uds, false, nil
}

// simulatorRoot loads --ca-cert/--ca-key, else <out>/root.pem and
// root.key, else creates them. It returns the files it wrote.
func simulatorRoot(cfg diceSimulateConfig) (*dicesim.Cert, []string, error) {
	certFile, keyFile := cfg.CACert, cfg.CAKey
	if certFile == "" {
		certFile, keyFile = filepath.Join(cfg.Out, "root.pem"), filepath.Join(cfg.Out, "root.key")
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			root, err := dicesim.NewRoot("zdps DICE simulator manufacturer CA", nil)
			if err != nil {
				return nil, nil, err
			}
			key, err := root.KeyPEM()
			if err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(keyFile, key, 0o600); err != nil {
				return nil, nil, cmdutil.Errorf(err, "write the root key: %v", err)
			}
			if err := os.WriteFile(certFile, root.PEM(), 0o644); err != nil {
				return nil, nil, cmdutil.Errorf(err, "write the root: %v", err)
			}
			return root, []string{certFile, keyFile}, nil
		}
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, cmdutil.Errorf(err, "read the CA certificate: %v", err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, cmdutil.Errorf(err, "read the CA key: %v", err)
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		return nil, nil, cmdutil.Errorf(nil, "%s and %s must be PEM", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, nil, cmdutil.Errorf(err, "%s: %v", certFile, err)
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(kblk.Bytes); err != nil {
		if key, err = x509.ParseECPrivateKey(kblk.Bytes); err != nil {
			return nil, nil, cmdutil.Errorf(err, "%s: not a PKCS#8 or SEC 1 private key", keyFile)
		}
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || !ec.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, cmdutil.Errorf(nil, "%s is not the ECDSA key of %s", keyFile, certFile)
	}
	if !cert.IsCA {
		return nil, nil, cmdutil.Errorf(nil, "%s is not a CA certificate", certFile)
	}
	return &dicesim.Cert{Cert: cert, Key: ec}, []string{certFile}, nil
}
