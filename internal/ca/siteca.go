package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/ca/castate"
)

// Delegated site CAs: the issuing CA of an edge gateway, signed by the
// intermediate, confined to one site.

// MaxSiteCAValidity is the longest validity of a delegated site CA.
const MaxSiteCAValidity = 90 * 24 * time.Hour

// DefaultSiteCAValidity is the validity of a delegated site CA unless
// configured otherwise.
const DefaultSiteCAValidity = 30 * 24 * time.Hour

// SitePolicyBase is the certificate policy arc of zdps site CAs (a UUID
// OID, ITU-T X.667): a site CA carries SitePolicyBase.<32-bit FNV-1a of
// the site name>. The name constraint is what confines the CA; the policy
// lets relying parties that check policies tell sites apart.
const SitePolicyBase = "2.25.137396026131979135261833922083420237948"

// SiteOrganization is the O every certificate a site CA may sign carries
// in its subject: the CA's permitted directoryName subtree.
func SiteOrganization(site string) string { return "zdps-site-" + site }

// SitePolicy is the certificate policy OID of site.
func SitePolicy(site string) (x509.OID, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(site))
	return x509.ParseOID(fmt.Sprintf("%s.%d", SitePolicyBase, h.Sum32()))
}

// ErrSiteCA: the request for a site CA is unusable (bad site or
// gateway name, bad validity).
var ErrSiteCA = errors.New("ca: invalid site CA request")

// SiteCAPolicy is what central decided for one gateway's CA.
type SiteCAPolicy struct {
	// Site names the site (enrollment.ValidateSiteName); Gateway is the
	// gateway's registration ID, written into the CA's subject.
	Site, Gateway string
	// Validity is capped at MaxSiteCAValidity and the intermediate's
	// NotAfter; zero means DefaultSiteCAValidity.
	Validity time.Duration
}

// oidNameConstraints is id-ce-nameConstraints.
var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

// SignSiteCA issues a delegated CA for a gateway's CA key from its DER
// PKCS#10 CSR (ECDSA P-256 or P-384; its subject is ignored): CA true,
// path length 0 (it signs leaves only), key usage certSign and cRLSign,
// the site's policy, and a name constraint whose only permitted subtree
// is the directoryName O=zdps-site-<site>, so every certificate it signs
// must have that O first in its subject (then CN=device ID).
//
// The name constraints extension is not marked critical: Go's verifier
// refuses a critical one holding a directoryName (it does not implement
// that form), which would break every Go client of the site's hubs.
// OpenSSL, and with it most hubs' TLS stacks, enforces it either way.
func (c *CA) SignSiteCA(csrDER []byte, p SiteCAPolicy) (*Issued, error) {
	if p.Site == "" || p.Gateway == "" || len(p.Site) > 63 || len(p.Gateway) > 128 {
		return nil, fmt.Errorf("%w: site and gateway are required", ErrSiteCA)
	}
	if p.Validity < 0 || p.Validity > MaxSiteCAValidity {
		return nil, fmt.Errorf("%w: validity %v (at most %v)", ErrSiteCA, p.Validity, MaxSiteCAValidity)
	}
	if p.Validity == 0 {
		p.Validity = DefaultSiteCAValidity
	}
	// One generation for the whole certificate (a rotation landing now
	// cannot mix one intermediate's name with another's key).
	g := c.cur.Load()
	if err := g.canDelegate(); err != nil {
		return nil, err
	}
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	k, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || (k.Curve != elliptic.P256() && k.Curve != elliptic.P384()) {
		return nil, fmt.Errorf("%w: a site CA key must be ECDSA P-256 or P-384", ErrCSRKey)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRSignature, err)
	}
	nb, na, err := c.window(g, p.Validity)
	if err != nil {
		return nil, err
	}
	serial, err := castate.RandomSerial(c.rand)
	if err != nil {
		return nil, err
	}
	nc, err := siteNameConstraints(p.Site)
	if err != nil {
		return nil, err
	}
	policy, err := SitePolicy(p.Site)
	if err != nil {
		return nil, fmt.Errorf("%w: policy: %w", ErrSiteCA, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{SiteOrganization(p.Site)},
			OrganizationalUnit: []string{"gateway " + p.Gateway},
			CommonName:         "zdps site CA " + p.Site,
		},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          castate.KeyID(k),
		Policies:              []x509.OID{policy},
		ExtraExtensions:       []pkix.Extension{{Id: oidNameConstraints, Critical: false, Value: nc}},
	}
	if c.crlURL != "" {
		tmpl.CRLDistributionPoints = []string{c.crlURL}
	}
	cert, der, err := c.create(g, tmpl, k, "sign site CA", "parse site CA")
	if err != nil {
		return nil, err
	}
	c.log.Info("site CA issued", "site", p.Site, "gateway", p.Gateway, "serial", fmt.Sprintf("%032x", serial), "not_after", na)
	return &Issued{
		Certificate: cert,
		DER:         der,
		Chain:       [][]byte{der, bytes.Clone(g.Inter.Raw), bytes.Clone(g.Root.Raw)},
		Serial:      fmt.Sprintf("%032x", serial),
	}, nil
}

// ErrCannotDelegate: the intermediate (or the root above it) allows no
// CA below it, so no site CA can chain to the root.
var ErrCannotDelegate = errors.New("ca: this CA cannot delegate: its intermediate needs a path length of at least 1 and its root of at least 2 (CAs created before edge gateways have 0 and 1; import or rotate to a CA that allows it)")

// canDelegate checks the path lengths of the chain above a site CA.
func (g *gen) canDelegate() error {
	// MaxPathLen is -1 for no constraint; 0 with MaxPathLenZero for 0.
	if g.Inter.MaxPathLen == 0 || g.Inter.MaxPathLen < -1 {
		return ErrCannotDelegate
	}
	if g.Root.MaxPathLen != -1 && g.Root.MaxPathLen < 2 {
		return ErrCannotDelegate
	}
	return nil
}

// siteNameConstraints is the DER NameConstraints of a site CA: one
// permitted subtree, the directoryName O=zdps-site-<site> (RFC 5280
// 4.2.1.10; a directoryName is [4] EXPLICIT Name).
func siteNameConstraints(site string) ([]byte, error) {
	name, err := asn1.Marshal(pkix.Name{Organization: []string{SiteOrganization(site)}}.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	subtree, err := asn1.Marshal(struct {
		Base asn1.RawValue
	}{asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		Permitted asn1.RawValue
	}{asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: subtree}})
}

// SiteOf is the site a site CA was issued for: the O after
// "zdps-site-" of a CA certificate that carries the site's name
// constraint; ok false for any other certificate.
func SiteOf(cert *x509.Certificate) (site string, ok bool) {
	if !cert.IsCA || len(cert.Subject.Organization) != 1 {
		return "", false
	}
	site, ok = strings.CutPrefix(cert.Subject.Organization[0], "zdps-site-")
	if !ok {
		return "", false
	}
	want, err := siteNameConstraints(site)
	if err != nil {
		return "", false
	}
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidNameConstraints) && bytes.Equal(e.Value, want) {
			return site, true
		}
	}
	return "", false
}
