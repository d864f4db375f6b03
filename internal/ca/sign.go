package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/ca/castate"
)

// MaxCSRSize bounds the CSR SignCSR parses. An RSA-8192 CSR is about 2 KiB;
// anything far larger is not a device's CSR.
const MaxCSRSize = 16 << 10

// RSA sizes SignCSR accepts. Above 8192 bits verification cost becomes a
// denial-of-service lever and no device needs it.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// LeafPolicy is what the provisioning pipeline decided for one device. It is
// the only source of the certificate's content besides the CSR's public key.
type LeafPolicy struct {
	// RegistrationID must equal the CSR's common name exactly (case and
	// all), as the device sent it. Required.
	RegistrationID string
	// DeviceID becomes the certificate's subject CN. Required. IDs up to
	// 128 characters exceed X.520's 64 for a CN; Go and OpenSSL verify
	// them (tested), so they are issued as they are.
	DeviceID string
	// Validity of the certificate; zero means Config.DefaultLeafValidity.
	// It is capped at the intermediate's NotAfter.
	Validity time.Duration
}

// Issued is a newly signed certificate. The CA keeps no copy: the caller
// must store it (with the registration record, in one transaction) before
// returning it to the device, and fail the request if that store fails.
type Issued struct {
	Certificate *x509.Certificate
	DER         []byte
	// Chain is leaf, intermediate, root (DER), the order of DPS's
	// issuedCertificateChain.
	Chain [][]byte
	// Serial is the serial number in lower-case hex, 32 digits.
	Serial string
}

// SignCSR checks a device's DER PKCS#10 CSR and issues a client certificate
// for its key under policy p. See the package doc for every check made. It
// does no I/O, hence no context: about 1 ms of CPU per call.
func (c *CA) SignCSR(csrDER []byte, p LeafPolicy) (*Issued, error) {
	if p.RegistrationID == "" || p.DeviceID == "" {
		return nil, fmt.Errorf("%w: RegistrationID and DeviceID are required", ErrInvalidPolicy)
	}
	if p.Validity < 0 {
		return nil, fmt.Errorf("%w: negative validity", ErrInvalidPolicy)
	}
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	// Key before signature: a weak key is refused as such even when its
	// signature is fine, and a huge RSA key is never used to verify.
	if err := checkLeafKey(csr.PublicKey); err != nil {
		return nil, err
	}
	switch csr.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.DSAWithSHA256:
		return nil, fmt.Errorf("%w: algorithm %s is not accepted", ErrCSRSignature, csr.SignatureAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRSignature, err)
	}
	if err := checkSubject(csr.Subject, p.RegistrationID); err != nil {
		return nil, err
	}
	is, err := c.issue(csr.PublicKey, p.DeviceID, p.Validity, leafClient)
	if err != nil {
		return nil, err
	}
	c.log.Debug("certificate issued", "registration_id", p.RegistrationID, "serial", is.Serial, "not_after", is.Certificate.NotAfter)
	return is, nil
}

func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCSRMalformed)
	}
	if len(der) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrCSRMalformed, len(der), MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRMalformed, err)
	}
	return csr, nil
}

// checkLeafKey is the complete list of device keys accepted.
func checkLeafKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s (want P-256 or P-384)", ErrCSRKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return fmt.Errorf("%w: RSA %d bits (want %d to %d)", ErrCSRKey, n, minRSABits, maxRSABits)
		}
		return nil
	default:
		return fmt.Errorf("%w: key type %T", ErrCSRKey, pub)
	}
}

// checkCAKey is what an imported intermediate may use: the leaf list plus
// P-521, which some enterprise PKIs use for CAs.
func checkCAKey(pub crypto.PublicKey) error {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P521() {
		return nil
	}
	if err := checkLeafKey(pub); err != nil {
		return errors.New("intermediate key type is not ECDSA P-256/P-384/P-521, Ed25519 or RSA 2048-8192")
	}
	return nil
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// checkSubject requires exactly one CN, equal to id. pkix.Name keeps only
// the last CN it sees, so a second one could otherwise hide behind it.
func checkSubject(subj pkix.Name, id string) error {
	n := 0
	for _, a := range subj.Names {
		if a.Type.Equal(oidCommonName) {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: subject has %d common names, want 1", ErrCSRSubject, n)
	}
	// Not a secret: a plain comparison is fine.
	if subj.CommonName != id {
		return fmt.Errorf("%w: CN %q, registration ID %q", ErrCSRSubject, truncate(subj.CommonName, 130), id)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

type leafKind int

const (
	leafClient leafKind = iota
	leafServer
)

// issue signs a leaf for pub. Everything in it comes from the arguments and
// the CA's configuration.
func (c *CA) issue(pub crypto.PublicKey, cn string, validity time.Duration, kind leafKind, sans ...func(*x509.Certificate)) (*Issued, error) {
	if validity == 0 {
		validity = c.leafValidity
	}
	// One generation for the whole certificate: a rotation landing now
	// cannot mix one intermediate's name with another's key.
	g := c.cur.Load()
	nb, na, err := c.window(g, validity)
	if err != nil {
		return nil, err
	}
	serial, err := castate.RandomSerial(c.rand)
	if err != nil {
		return nil, err
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		// RSA TLS clients of old stacks may still do key transport.
		ku |= x509.KeyUsageKeyEncipherment
	}
	eku := x509.ExtKeyUsageClientAuth
	if kind == leafServer {
		eku = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          castate.KeyID(pub),
	}
	if c.crlURL != "" {
		tmpl.CRLDistributionPoints = []string{crlURLFor(c.crlURL, g)}
	}
	if g.Site != "" {
		// A delegated CA's name constraint permits only subjects under
		// O=zdps-site-<site> (SignSiteCA).
		tmpl.Subject.Organization = []string{SiteOrganization(g.Site)}
	}
	for _, f := range sans {
		f(tmpl)
	}
	cert, der, err := c.create(g, tmpl, pub, "sign", "parse issued")
	if err != nil {
		return nil, err
	}
	return &Issued{
		Certificate: cert,
		DER:         der,
		Chain:       append([][]byte{der}, g.chainDER()...),
		Serial:      fmt.Sprintf("%032x", serial),
	}, nil
}

// window is when a certificate that g issues now for validity is valid:
// back-dated a minute (clock skew) but not before the intermediate, and
// cut at the intermediate's end; ErrCAExpired when g cannot issue now.
func (c *CA) window(g *gen, validity time.Duration) (notBefore, notAfter time.Time, err error) {
	now := c.now()
	nb := now.Add(-time.Minute)
	if nb.Before(g.Inter.NotBefore) {
		nb = g.Inter.NotBefore
	}
	na := castate.MinTime(now.Add(validity), g.Inter.NotAfter)
	if !na.After(now) || now.Before(g.Inter.NotBefore) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: valid %s to %s, now %s", ErrCAExpired, g.Inter.NotBefore, g.Inter.NotAfter, now)
	}
	return nb, na, nil
}

// create signs tmpl for pub with g's intermediate and parses the result;
// signWhat and parseWhat name the steps in errors.
func (c *CA) create(g *gen, tmpl *x509.Certificate, pub crypto.PublicKey, signWhat, parseWhat string) (*x509.Certificate, []byte, error) {
	// CreateCertificate verifies the signature it has just made (Go's
	// signTBS checks every crypto.Signer's output, with no way to opt
	// out): one P-256 verification, ~95µs of BenchmarkSignCSR's ~310µs on
	// the 2-core reference machine, next to the CSR's proof-of-possession
	// check and the signature itself. Skipping it would mean encoding the
	// TBSCertificate ourselves; measured and kept, since a wrong
	// signature would be caught here rather than by every device.
	der, err := x509.CreateCertificate(c.rand, tmpl, g.Issuer, pub, g.Signer)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %s: %w", signWhat, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %s: %w", parseWhat, err)
	}
	return cert, der, nil
}

// crlURLFor is the CRL distribution point of what generation g issues. Once
// the CA has been rotated, it names its intermediate (GET /crl?issuer=, by
// SHA-256 thumbprint), so that the certificate still finds its own
// issuer's CRL after the next rotation; before, it is the plain URL, as it
// always was.
func crlURLFor(base string, g *gen) string {
	if g.Generation == 0 {
		return base
	}
	sum := sha256.Sum256(g.Inter.Raw)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "issuer=" + strings.ToUpper(hex.EncodeToString(sum[:]))
}
