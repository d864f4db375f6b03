package dicesim

import (
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// Vector is one test vector of testdata/dice: a device, what its chain
// states, and the outcome zdps must give it under VectorPolicy.
type Vector struct {
	// Name is the directory under testdata/dice.
	Name string
	// Device built under the vector root.
	Device Device
	// Outcome is "assigned", "failed" (the firmware policy refuses it;
	// Reason is in the message) or "unauthorized" (the chain does not
	// verify).
	Outcome string
	// Reason is a part of the refusal message.
	Reason string
	// Doc says what the vector shows.
	Doc string
}

// Vector constants: the firmware images and their measurements.
var (
	VectorVendor = "zdps-sim"
	VectorModel  = "sim-board"
	fwL0         = Measure([]byte("zdps-sim DICE engine v1"))
	fwL1v3       = Measure([]byte("zdps-sim firmware v3"))
	fwL1v4       = Measure([]byte("zdps-sim firmware v4"))
	fwL1Unknown  = Measure([]byte("someone else's firmware"))
	fwL2         = Measure([]byte("zdps-sim application v1"))
	// OIDUnknownCritical is a private OID no verifier understands.
	OIDUnknownCritical = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 1, 1}
)

func i64(v int64) *int64 { return &v }

func uds(name string) []byte {
	s := sha256.Sum256([]byte("zdps dicesim vector UDS " + name))
	return s[:]
}

func tcb(layer, svn int64, vendor string, fw dice.FWID) dice.TcbInfo {
	return dice.TcbInfo{Vendor: vendor, Model: VectorModel, Version: fmt.Sprintf("svn-%d", svn), SVN: i64(svn), Layer: i64(layer), FWIDs: []dice.FWID{fw}}
}

// VectorPolicy is the firmware policy of the vector group: vendor and
// model, debug forbidden, layer 0 the known DICE engine, layer 1 firmware
// v3 or v4 with an SVN of at least 2.
func VectorPolicy() *firmware.Policy {
	d := func(f dice.FWID) firmware.Digest {
		return firmware.Digest{HashAlg: "sha256", Digest: hex.EncodeToString(f.Digest)}
	}
	return &firmware.Policy{
		Vendor: VectorVendor, Model: VectorModel, ForbiddenFlags: []string{"debug"},
		Layers: []firmware.LayerPolicy{
			{Layer: 0, AllowedFWIDs: []firmware.Digest{d(fwL0)}},
			{Layer: 1, MinSVN: i64(2), AllowedFWIDs: []firmware.Digest{d(fwL1v3), d(fwL1v4)}},
		},
	}
}

// Vectors lists the test vectors of testdata/dice.
func Vectors() []Vector {
	dev := func(name, regID string, alias ...dice.TcbInfo) Device {
		l0 := tcb(0, 1, VectorVendor, fwL0)
		return Device{UDS: uds(name), RegistrationID: regID, DeviceIDTcbInfo: &l0, UEID: uds(name)[:16], AliasTcbInfos: alias, Critical: true}
	}
	updated := dev("tcbinfo", "dice-vec-tcbinfo", tcb(1, 4, VectorVendor, fwL1v4))
	multi := dev("multitcbinfo", "dice-vec-multi", tcb(1, 3, VectorVendor, fwL1v3), tcb(2, 1, VectorVendor, fwL2))
	legacy := dev("legacy-riot", "dice-vec-riot", tcb(1, 3, VectorVendor, fwL1v3))
	legacy.LegacyRIoT, legacy.DeviceIDTcbInfo = true, nil // RIoT devices state no TcbInfo at all
	unknown := dev("unknown-critical", "dice-vec-unknown-critical", tcb(1, 3, VectorVendor, fwL1v3))
	unknown.AliasExtensions = []pkix.Extension{{Id: OIDUnknownCritical, Critical: true, Value: []byte{0x05, 0x00}}}
	return []Vector{
		{Name: "tcbinfo", Device: dev("tcbinfo", "dice-vec-tcbinfo", tcb(1, 3, VectorVendor, fwL1v3)), Outcome: "assigned",
			Doc: "valid chain: DeviceID with TcbInfo (layer 0) and UEID, Alias with TcbInfo (layer 1, firmware v3, svn 3); critical DICE extensions"},
		{Name: "tcbinfo-updated", Device: updated, Outcome: "assigned",
			Doc: "the same device (same UDS, same DeviceID key) after a firmware update to v4, svn 4: keeps its device ID and hub, audit event with old and new measurements"},
		{Name: "multitcbinfo", Device: multi, Outcome: "assigned",
			Doc: "valid chain: Alias with MultiTcbInfo (layer 1 firmware v3 and layer 2 application)"},
		{Name: "legacy-riot", Device: legacy, Outcome: "failed", Reason: "legacy RIoT CompositeDeviceID",
			Doc: "legacy Microsoft RIoT chain: OID 2.23.133.5.4.1 holds a CompositeDeviceID, recognised (not decoded as an empty TcbInfo); the chain verifies, the policy refuses it for lack of a TcbInfo"},
		{Name: "unknown-critical", Device: unknown, Outcome: "unauthorized",
			Doc: "Alias with an unknown critical extension (1.3.6.1.4.1.55555.1.1): chain verification fails although the DICE extensions are understood"},
		{Name: "rolled-back-svn", Device: dev("rolled-back-svn", "dice-vec-rollback", tcb(1, 1, VectorVendor, fwL1v3)), Outcome: "failed", Reason: "layer 1: svn 1 is below the minimum 2",
			Doc: "allowed firmware digest but svn 1, below the policy's minimum 2 (rollback)"},
		{Name: "unknown-fwid", Device: dev("unknown-fwid", "dice-vec-unknown-fwid", tcb(1, 3, VectorVendor, fwL1Unknown)), Outcome: "failed", Reason: "layer 1: FWID sha256:" + hex.EncodeToString(fwL1Unknown.Digest) + " is not allowed",
			Doc: "layer 1 firmware digest not in the policy's allowed list"},
		{Name: "vendor-mismatch", Device: dev("vendor-mismatch", "dice-vec-vendor", tcb(1, 3, "evil-corp", fwL1v3)), Outcome: "failed", Reason: `layer 1: vendor "evil-corp" is not "zdps-sim"`,
			Doc: "layer 1 TcbInfo names another vendor"},
	}
}

// VectorRootSeed makes the vector root reproducible (its key; signatures
// are randomised).
var VectorRootSeed = []byte("zdps dicesim vector root seed 01")

// WriteVectors regenerates testdata/dice in dir: root.pem, policy.json,
// and per vector <name>/alias-chain.pem, alias.key and deviceid.pem.
func WriteVectors(dir string) error {
	root, err := NewRoot("zdps DICE vector manufacturer CA", VectorRootSeed)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "root.pem"), root.PEM(), 0o644); err != nil {
		return err
	}
	pol, err := json.MarshalIndent(VectorPolicy(), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.json"), append(pol, '\n'), 0o644); err != nil {
		return err
	}
	var readme strings.Builder
	readme.WriteString(vectorsReadme)
	for _, v := range Vectors() {
		outcome := v.Outcome
		if v.Reason != "" {
			outcome += ": " + v.Reason
		}
		fmt.Fprintf(&readme, "| `%s` | %s | %s |\n", v.Name, v.Doc, strings.ReplaceAll(outcome, "|", "\\|"))
		c, err := Build(root, v.Device)
		if err != nil {
			return fmt.Errorf("%s: %w", v.Name, err)
		}
		sub := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		if err := c.WriteFiles(sub); err != nil {
			return fmt.Errorf("%s: %w", v.Name, err)
		}
	}
	return os.WriteFile(filepath.Join(dir, "README.md"), []byte(readme.String()), 0o644)
}

const vectorsReadme = `# DICE test vectors

Generated by attestation/dice/dicesim (WriteVectors); do not edit by hand. Regenerate with

    go test ./internal/provisioning/x509att -run TestDICEVectors -update

` + "`root.pem`" + ` is the manufacturer CA an enrollment group names (signingCertificates);
` + "`policy.json`" + ` is the group's firmwarePolicy. Each directory holds ` + "`alias-chain.pem`" + ` (the
Alias certificate, CN = registration ID, then the DeviceID certificate: what the device
presents in TLS), ` + "`alias.key`" + ` (the Alias private key, a test key) and ` + "`deviceid.pem`" + `.
The table test TestDICEVectors (internal/provisioning/x509att) registers each chain through the
whole pipeline, in this order, and checks the outcome below ("failed" is status failed with
errorCode 403010 and the message quoted; "unauthorized" is a 401).

| vector | what it shows | outcome |
|---|---|---|
`
