package enrollcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// firmwarePolicyConfig is the configuration of `zdps group
// set-firmware-policy` and `zdps enrollment set-firmware-policy`.
type firmwarePolicyConfig struct {
	ID string
	// File is a JSON FirmwarePolicy ("-" for stdin); exclusive with the
	// rule flags.
	File                string
	Clear               bool
	AllowMissingTcbInfo bool
	Vendor              string
	Model               string
	ForbidFlags         []string
	// AllowFWIDs are LAYER=ALG:HEX; MinSVNs LAYER=N; LayerVendors and
	// LayerModels LAYER=VALUE.
	AllowFWIDs   []string
	MinSVNs      []string
	LayerVendors []string
	LayerModels  []string
	ETag         string
}

const firmwarePolicyLong = `Set the DICE firmware policy (a zdps extension, ignored by Azure tools) of %s.
A device registering with a DICE certificate chain (X.509 attestation; the Alias
certificate is the TLS client certificate) is then checked against the TcbInfo and
MultiTcbInfo measurements of its verified chain: a TcbInfo is required (unless
--allow-missing-tcbinfo), every TcbInfo must match --vendor/--model and have no
--forbid-flag set, and for each layer named by a rule, the chain must carry a
TcbInfo for it with an SVN of at least --min-svn and an FWID among --allow-fwid.
A violation ends the registration with status failed, errorCode 403010 and a
message naming the layer and the measurement.

The policy replaces the current one; give it with flags or as JSON with --file
(the "firmwarePolicy" object of the service API). --clear removes it.`

func (c *firmwarePolicyConfig) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.File, "file", "", `JSON firmware policy file ("-" for stdin), instead of the rule flags`)
	f.BoolVar(&c.Clear, "clear", false, "remove the firmware policy")
	f.BoolVar(&c.AllowMissingTcbInfo, "allow-missing-tcbinfo", false, "admit chains without any TcbInfo (plain X.509 devices)")
	f.StringVar(&c.Vendor, "vendor", "", "vendor every TcbInfo must state")
	f.StringVar(&c.Model, "model", "", "model every TcbInfo must state")
	f.StringSliceVar(&c.ForbidFlags, "forbid-flag", nil, "operational flag no TcbInfo may have: notConfigured, notSecure, recovery, debug (repeatable)")
	f.StringArrayVar(&c.AllowFWIDs, "allow-fwid", nil, "LAYER=ALG:HEX, an allowed firmware digest of a layer, e.g. 1=sha256:ab12... (repeatable; list old and new firmware during a rollout)")
	f.StringArrayVar(&c.MinSVNs, "min-svn", nil, "LAYER=N, the lowest security version accepted for a layer (repeatable)")
	f.StringArrayVar(&c.LayerVendors, "layer-vendor", nil, "LAYER=VENDOR, replaces --vendor for one layer (repeatable)")
	f.StringArrayVar(&c.LayerModels, "layer-model", nil, "LAYER=MODEL, replaces --model for one layer (repeatable)")
	f.StringVar(&c.ETag, "etag", "", "update only if the etag still is this one (default: the etag read just before)")
}

func (k *kind[T]) setFirmwarePolicyCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg firmwarePolicyConfig
	cmd := &cobra.Command{
		Use:     "set-firmware-policy " + k.idArg + " [flags]",
		Short:   "Set or clear the DICE firmware policy of an " + k.long,
		Long:    strings.Replace(firmwarePolicyLong, "%s", "an "+k.long, 1),
		Example: k.firmwareExample,
		Args:    cmdutil.ExactArgs(k.idArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.ID = args[0]
			return k.runSetFirmwarePolicy(cmd, g, cfg)
		},
	}
	cfg.register(cmd)
	return cmd
}

// updateFirmwarePolicy reads the document, sets its policy and writes it
// back under an If-Match of the etag read (or etag when given), with its
// attestation restored; it returns the stored policy.
func (k *kind[T]) updateFirmwarePolicy(ctx context.Context, c *client.Client, id, etag string, p *firmware.Policy) (*firmware.Policy, error) {
	d, err := k.get(c, ctx, id)
	if err != nil {
		return nil, err
	}
	f := k.fields(d)
	if needsStoredAttestation(f.Spec.Attestation) {
		if f.Spec.Attestation, err = k.keys(c, ctx, id); err != nil {
			return nil, err
		}
	}
	if etag == "" {
		etag = f.Meta.ETag
	}
	if f.State != nil {
		*f.State = nil // the server's, not part of a PUT
	}
	f.Spec.FirmwarePolicy = p
	got, err := k.put(c, ctx, d, etag)
	if err != nil {
		return nil, err
	}
	return k.fields(got).Spec.FirmwarePolicy, nil
}

// needsStoredAttestation reports whether a GET answer lacks what a PUT
// must carry: X.509 certificates (GET answers only their info). Keys left
// empty are kept by the service.
func needsStoredAttestation(a *enrollment.AttestationMechanism) bool {
	return a != nil && a.X509 != nil && (a.X509.ClientCertificates != nil || a.X509.SigningCertificates != nil)
}

func (k *kind[T]) runSetFirmwarePolicy(cmd *cobra.Command, g *cmdutil.Globals, cfg firmwarePolicyConfig) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	p, err := cfg.build(cmd.InOrStdin())
	if err != nil {
		return err
	}
	c, err := g.Client()
	if err != nil {
		return err
	}
	got, err := k.updateFirmwarePolicy(cmd.Context(), c, cfg.ID, cfg.ETag, p)
	if err != nil {
		return cmdutil.Fail(err, k.noun, cfg.ID, "set the firmware policy of")
	}
	pr := g.Printer(cmd.OutOrStdout())
	if pr.JSON {
		return pr.PrintJSON(struct {
			FirmwarePolicy *firmware.Policy `json:"firmwarePolicy"`
		}{got})
	}
	return pr.Details(describeFirmwarePolicy(k.noun, cfg.ID, got)...)
}

// build makes the policy from the flags or the file; nil with --clear.
func (c *firmwarePolicyConfig) build(stdin io.Reader) (*firmware.Policy, error) {
	rules := c.AllowMissingTcbInfo || c.Vendor != "" || c.Model != "" || len(c.ForbidFlags) > 0 ||
		len(c.AllowFWIDs) > 0 || len(c.MinSVNs) > 0 || len(c.LayerVendors) > 0 || len(c.LayerModels) > 0
	switch {
	case c.Clear && (rules || c.File != ""):
		return nil, cmdutil.Errorf(nil, "--clear takes no policy (no --file and no rule flags)")
	case c.Clear:
		return nil, nil
	case c.File != "" && rules:
		return nil, cmdutil.Errorf(nil, "give the policy either with --file or with rule flags, not both")
	case c.File != "":
		return readFirmwarePolicy(c.File, stdin)
	case !rules:
		return nil, cmdutil.Errorf(nil, "no policy given: use rule flags (--vendor, --allow-fwid, --min-svn, ...), --file, or --clear (see --help)")
	}
	p := &firmware.Policy{AllowMissingTcbInfo: c.AllowMissingTcbInfo, Vendor: c.Vendor, Model: c.Model, ForbiddenFlags: c.ForbidFlags}
	layer := func(flag, spec string) (*firmware.LayerPolicy, string, error) {
		l, v, ok := strings.Cut(spec, "=")
		n, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
		if !ok || err != nil || v == "" {
			return nil, "", cmdutil.Errorf(err, "--%s %q: want LAYER=VALUE with a numeric layer", flag, spec)
		}
		i := slices.IndexFunc(p.Layers, func(r firmware.LayerPolicy) bool { return r.Layer == n })
		if i < 0 {
			p.Layers = append(p.Layers, firmware.LayerPolicy{Layer: n})
			i = len(p.Layers) - 1
		}
		return &p.Layers[i], v, nil
	}
	for _, s := range c.AllowFWIDs {
		r, v, err := layer("allow-fwid", s)
		if err != nil {
			return nil, err
		}
		alg, dig, ok := strings.Cut(v, ":")
		if !ok {
			return nil, cmdutil.Errorf(nil, "--allow-fwid %q: want LAYER=ALG:HEX, e.g. 1=sha256:ab12...", s)
		}
		r.AllowedFWIDs = append(r.AllowedFWIDs, firmware.Digest{HashAlg: alg, Digest: dig})
	}
	for _, s := range c.MinSVNs {
		r, v, err := layer("min-svn", s)
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, cmdutil.Errorf(err, "--min-svn %q: want LAYER=N", s)
		}
		r.MinSVN = &n
	}
	for _, s := range c.LayerVendors {
		r, v, err := layer("layer-vendor", s)
		if err != nil {
			return nil, err
		}
		r.Vendor = v
	}
	for _, s := range c.LayerModels {
		r, v, err := layer("layer-model", s)
		if err != nil {
			return nil, err
		}
		r.Model = v
	}
	if err := p.Validate(); err != nil {
		return nil, cmdutil.Errorf(err, "invalid firmware policy: %v", err)
	}
	return p, nil
}

func readFirmwarePolicy(file string, stdin io.Reader) (*firmware.Policy, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, cmdutil.Errorf(err, "read the firmware policy: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p firmware.Policy
	if err := dec.Decode(&p); err != nil {
		return nil, cmdutil.Errorf(err, "%s: not a firmware policy: %v", file, err)
	}
	if err := p.Validate(); err != nil {
		return nil, cmdutil.Errorf(err, "%s: invalid firmware policy: %v", file, err)
	}
	return &p, nil
}

// describeFirmwarePolicy renders a policy as detail pairs.
func describeFirmwarePolicy(kind, id string, p *firmware.Policy) []string {
	out := []string{strings.ToUpper(kind[:1]) + kind[1:], id}
	if p == nil {
		return append(out, "Firmware policy", "(none: any firmware, DICE or not)")
	}
	req := "required"
	if p.AllowMissingTcbInfo {
		req = "optional (chains without one are admitted)"
	}
	out = append(out, "TcbInfo", req,
		"Vendor", cmdutil.OrDefault(p.Vendor, "(any)"),
		"Model", cmdutil.OrDefault(p.Model, "(any)"),
		"Forbidden flags", cmdutil.OrDefault(strings.Join(p.ForbiddenFlags, ", "), "(none)"))
	for _, l := range p.Layers {
		var parts []string
		if l.Vendor != "" {
			parts = append(parts, "vendor "+strconv.Quote(l.Vendor))
		}
		if l.Model != "" {
			parts = append(parts, "model "+strconv.Quote(l.Model))
		}
		if l.MinSVN != nil {
			parts = append(parts, "svn >= "+strconv.FormatInt(*l.MinSVN, 10))
		}
		for _, f := range l.AllowedFWIDs {
			parts = append(parts, f.String())
		}
		if len(parts) == 0 {
			parts = append(parts, "a TcbInfo for the layer")
		}
		out = append(out, "Layer "+strconv.FormatInt(l.Layer, 10), strings.Join(parts, ", "))
	}
	return out
}
