package cacmd

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewCACmd is `zdps ca`.
func NewCACmd(g *cmdutil.Globals) *cobra.Command {
	cmd := cmdutil.ParentOf(g, "ca", "Show and export the embedded CA and its CRL; register CA certificates for X.509 enrollments", nil,
		newCAShowCmd, newCAExportCmd, newCACRLCmd, newCAAddCmd, newCAVerificationCodeCmd, newCAVerifyCmd, newCAListCmd, newCARemoveCmd)
	cmd.Long = `The embedded CA issues devices' operational certificates: "show", "export" and "crl"
describe it, write its bundle (intermediate then root) and fetch its CRL.

CA certificates of your own PKI, which X.509 enrollment groups name in caReferences,
are registered with proof of possession: "add" uploads one, "verification-code" issues a
code, you sign a certificate whose subject CN is that code with the CA's key, and "verify"
presents it. Only verified CA certificates anchor device chains.`
	return cmd
}

func newCAShowCmd(g *cmdutil.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show the embedded CA's root and issuing intermediate",
		Args:  cobra.NoArgs,
		RunE:  g.Run(cmdutil.Fetch((*client.Client).GetCA, cmdutil.Failing("CA", "embedded", "show"), cmdutil.JSONOr(printCA))),
	}
}

// printCA is the table of `zdps ca show`.
func printCA(p cmdutil.Printer, info *client.CAInfo) error {
	t := p.Table("ROLE", "SUBJECT", "SERIAL", "NOT BEFORE", "NOT AFTER", "SHA-256")
	type row struct {
		role string
		c    client.CACertificateInfo
	}
	inter := "intermediate"
	if info.KeyStore != "" {
		inter += " (key in " + info.KeyStore + ")"
	}
	rows := []row{{"root", info.Root}, {inter, info.Intermediate}}
	// Rotated-out intermediates stay in the bundle until their
	// last certificate expires.
	for _, pr := range info.Previous {
		rows = append(rows, row{"previous (until " + pr.KeepUntil.UTC().Format(time.RFC3339) + ")", pr.CACertificateInfo})
	}
	for _, c := range info.CrossSigned {
		rows = append(rows, row{"intermediate cross-signed by the previous root", c})
	}
	for _, pr := range info.PreviousRoots {
		rows = append(rows, row{"previous root (until " + pr.KeepUntil.UTC().Format(time.RFC3339) + ")", pr.CACertificateInfo})
	}
	for _, r := range rows {
		t.Row(r.role, r.c.Subject, r.c.Serial, r.c.NotBefore.UTC().Format(time.RFC3339), r.c.NotAfter.UTC().Format(time.RFC3339), r.c.SHA256Thumbprint)
	}
	return t.Flush()
}

// writeOut writes b to path, or to w when path is "" or "-". The CA
// bundle and the CRL are public, hence 0644.
func writeOut(w io.Writer, path string, b []byte) error {
	if path == "" || path == "-" {
		_, err := w.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return cmdutil.Errorf(err, "write %s: %v", path, err)
	}
	return nil
}

func newCAExportCmd(g *cmdutil.Globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export [--out FILE]",
		Short: "Write the CA bundle (intermediate then root, PEM) that issued certificates verify against",
		Example: `  zdps ca export --out bundle.pem
  openssl verify -CAfile bundle.pem device.pem`,
		Args: cobra.NoArgs,
		RunE: g.Run(func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
			b, err := c.CABundle(ctx)
			if err != nil {
				return cmdutil.Fail(err, "CA", "embedded", "export")
			}
			if _, err := cmdutil.ParsePEMCertificates(b); err != nil {
				return cmdutil.Errorf(err, "the service answered a CA bundle that does not parse: %v", err)
			}
			return writeOut(p.W, out, b)
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: standard output)")
	return cmd
}

// crlSummary is what `zdps ca crl` prints.
type crlSummary struct {
	Number     string `json:"number"`
	Issuer     string `json:"issuer"`
	ThisUpdate string `json:"thisUpdate"`
	NextUpdate string `json:"nextUpdate"`
	// SignatureVerified: the signature was checked against the CA's
	// intermediate as the service's bundle gives it.
	SignatureVerified bool         `json:"signatureVerified"`
	Revoked           []crlRevoked `json:"revoked"`
}

type crlRevoked struct {
	Serial    string `json:"serial"`
	RevokedAt string `json:"revokedAt"`
	Reason    int    `json:"reason"`
}

// reasonNames are the RFC 5280 CRLReason names.
var reasonNames = map[int]string{
	0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged", 4: "superseded",
	5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL", 9: "privilegeWithdrawn", 10: "aACompromise",
}

func reasonName(r int) string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return strconv.Itoa(r)
}

func newCACRLCmd(g *cmdutil.Globals) *cobra.Command {
	var out string
	var asPEM bool
	cmd := &cobra.Command{
		Use:   "crl [--out FILE] [--pem]",
		Short: "Fetch the CRL, check its signature and list the revoked serials",
		Long: `Fetch the CA's current CRL (GET /crl), check its signature against the CA's
intermediate and print its number, validity and revoked serials. --out also writes
the CRL (DER, or PEM with --pem); --pem without --out prints the PEM instead of the
summary.`,
		Example: `  zdps ca crl
  zdps ca crl --out zdps.crl && openssl crl -inform DER -in zdps.crl -noout -text`,
		Args: cobra.NoArgs,
		RunE: g.Run(func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
			der, err := c.CRL(ctx)
			if err != nil {
				return cmdutil.Fail(err, "CRL", "current", "fetch")
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				return cmdutil.Errorf(err, "the service answered a CRL that does not parse: %v", err)
			}
			file := der
			if asPEM {
				file = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
			}
			if asPEM && out == "" {
				return writeOut(p.W, "", file)
			}
			if out != "" {
				if err := writeOut(p.W, out, file); err != nil {
					return err
				}
			}
			sum := crlSummary{Issuer: crl.Issuer.String(), ThisUpdate: crl.ThisUpdate.UTC().Format(time.RFC3339), NextUpdate: crl.NextUpdate.UTC().Format(time.RFC3339), Revoked: []crlRevoked{}}
			if crl.Number != nil {
				sum.Number = crl.Number.String()
			}
			// A CRL whose signature does not verify is refused, not
			// summarised: its list cannot be trusted.
			bundle, err := c.CABundle(ctx)
			if err != nil {
				return cmdutil.Fail(err, "CA bundle", "embedded", "fetch (to check the CRL's signature)")
			}
			certs, err := cmdutil.ParsePEMCertificates(bundle)
			if err != nil {
				return cmdutil.Errorf(err, "CA bundle: %v", err)
			}
			if err := crl.CheckSignatureFrom(certs[0]); err != nil {
				return cmdutil.Errorf(err, "the CRL's signature does not verify against the CA's intermediate: %v", err)
			}
			sum.SignatureVerified = true
			for _, r := range crl.RevokedCertificateEntries {
				sum.Revoked = append(sum.Revoked, crlRevoked{Serial: serialHex(r.SerialNumber), RevokedAt: r.RevocationTime.UTC().Format(time.RFC3339), Reason: r.ReasonCode})
			}
			if p.JSON {
				return p.PrintJSON(sum)
			}
			if err := p.Details("CRL number", sum.Number, "Issuer", sum.Issuer, "This update", sum.ThisUpdate, "Next update", sum.NextUpdate,
				"Signature", "verified against the intermediate", "Revoked", strconv.Itoa(len(sum.Revoked))); err != nil {
				return err
			}
			if len(sum.Revoked) == 0 {
				return nil
			}
			fmt.Fprintln(p.W)
			t := p.Table("SERIAL", "REVOKED AT", "REASON")
			for _, r := range sum.Revoked {
				t.Row(r.Serial, r.RevokedAt, reasonName(r.Reason))
			}
			return t.Flush()
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "also write the CRL to this file")
	cmd.Flags().BoolVar(&asPEM, "pem", false, "PEM instead of DER (without --out: print the PEM instead of the summary)")
	return cmd
}

// serialHex is a serial as zdps stores it: lower-case hex, at least 32
// digits (the width of its 128-bit serials).
func serialHex(n *big.Int) string { return fmt.Sprintf("%032x", n) }

// readCertificateFile reads the PEM or DER certificate file of --cert
// and returns it in a form the API accepts (PEM as is, DER as base64).
func readCertificateFile(path string) (string, error) {
	if path == "" {
		return "", cmdutil.Errorf(nil, "--cert FILE is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", cmdutil.Errorf(err, "certificate %s: %v", path, err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return "", cmdutil.Errorf(nil, "certificate %s: the first PEM block is %q, not CERTIFICATE", path, blk.Type)
		}
		return string(b), nil
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return "", cmdutil.Errorf(err, "certificate %s is neither PEM nor DER: %v", path, err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func printCACertificate(p cmdutil.Printer, cert *enrollment.CACertificate) error {
	return printCACertificates(p, cert)
}

func printCACertificates(p cmdutil.Printer, certs ...*enrollment.CACertificate) error {
	if p.JSON {
		return cmdutil.PrintItems(p, certs)
	}
	t := p.Table("NAME", "SUBJECT", "VERIFIED", "NOT AFTER", "SHA-256")
	for _, c := range certs {
		var subj, na, thumb string
		if c.Info != nil {
			subj, na, thumb = c.Info.SubjectName, c.Info.NotAfterUTC, c.Info.SHA256Thumbprint
		}
		t.Row(c.Name, subj, strconv.FormatBool(c.IsVerified), na, thumb)
	}
	return t.Flush()
}

func newCAAddCmd(g *cmdutil.Globals) *cobra.Command {
	var certFile string
	cmd := &cobra.Command{
		Use:   "add NAME --cert FILE",
		Short: "Register a CA certificate (unverified until `zdps ca verify`); fails if NAME exists",
		Example: `  zdps ca add my-root --cert root.pem
  zdps ca verification-code my-root`,
		Args: cmdutil.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := enrollment.ValidateCACertificateName(name); err != nil {
				return cmdutil.Errorf(err, "invalid name: %v", err)
			}
			cert, err := readCertificateFile(certFile)
			if err != nil {
				return err
			}
			return g.Call(cmd, args, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				// PUT replaces; checking first keeps "add" from silently
				// replacing (and un-verifying) a registered certificate.
				switch _, err := c.GetCertificate(ctx, name); {
				case err == nil:
					return cmdutil.Errorf(nil, "CA certificate %q already exists (remove it first to replace it)", name)
				case !errors.Is(err, client.ErrNotFound):
					return cmdutil.Fail(err, "CA certificate", name, "add")
				}
				got, err := c.PutCertificate(ctx, name, cert, "")
				if err != nil {
					return cmdutil.Fail(err, "CA certificate", name, "add")
				}
				return printCACertificates(p, got)
			})
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "CA certificate file, PEM or DER")
	return cmd
}

func newCAVerificationCodeCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewShowCmd(g, cmdutil.ShowSpec[*client.VerificationCode]{
		Use:   "verification-code NAME",
		Short: "Issue a proof-of-possession code: sign a certificate with CN = the code using the CA's key",
		Example: `  code=$(zdps ca verification-code my-root -o json | jq -r .verificationCode)
  openssl req -new -key root.key -subj "/CN=$code" -out pop.csr
  openssl x509 -req -in pop.csr -CA root.pem -CAkey root.key -days 1 -out pop.pem
  zdps ca verify my-root --cert pop.pem`,
		Resource: "CA certificate", Action: "get a verification code for",
		Get: (*client.Client).CertificateVerificationCode,
		Print: func(p cmdutil.Printer, vc *client.VerificationCode) error {
			if p.JSON {
				return p.PrintJSON(vc)
			}
			return p.Details("Name", vc.Name, "Verification code", vc.Code, "Expires", vc.Expiry.UTC().Format(time.RFC3339))
		},
	})
}

func newCAVerifyCmd(g *cmdutil.Globals) *cobra.Command {
	var certFile string
	cmd := &cobra.Command{
		Use:   "verify NAME --cert FILE",
		Short: "Present the proof of possession: a certificate with CN = the verification code, signed by the CA's key",
		Args:  cmdutil.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cert, err := readCertificateFile(certFile)
			if err != nil {
				return err
			}
			return g.Call(cmd, args, cmdutil.FetchID(func(c *client.Client, ctx context.Context, name string) (*enrollment.CACertificate, error) {
				return c.VerifyCertificate(ctx, name, cert)
			}, "CA certificate", "verify", printCACertificate))
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "verification certificate file, PEM or DER")
	return cmd
}

func newCAListCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewListAllCmd(g, cmdutil.ListAllSpec[*enrollment.CACertificate]{
		Short: "List the registered CA certificates", What: "CA certificates",
		List: cmdutil.All((*client.Client).Certificates), Print: printCACertificates,
	})
}

func newCARemoveCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.NewDeleteCmd(g, cmdutil.DeleteSpec{
		Use: "remove NAME", Aliases: []string{"rm", "delete"}, Verb: "remove", Resource: "CA certificate",
		Short:  "Remove a registered CA certificate (groups naming it no longer admit devices through it)",
		Delete: (*client.Client).DeleteCertificate,
	})
}
