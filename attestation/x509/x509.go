package x509

import (
	"bytes"
	"context"
	stdx509 "crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Sentinel errors. Every refusal of device input wraps exactly one of them;
// an error from the Lookup wraps none (a store failure is a server fault,
// not a refusal). Transports answer all refusals with 401.
var (
	// ErrUnauthorized: no enrollment admits the chain (unknown CA), or an
	// enabled individual enrollment for the registration ID names another
	// certificate.
	ErrUnauthorized = errors.New("x509: unauthorized")
	// ErrMalformed: no certificate, a chain longer than MaxChainLength, or
	// a leaf without exactly one subject CN.
	ErrMalformed = errors.New("x509: malformed certificate chain")
	// ErrCNMismatch: the leaf's subject CN is not the registration ID (or
	// is longer than MaxCNLength).
	ErrCNMismatch = errors.New("x509: leaf common name differs from the registration ID")
	// ErrExpired: the leaf, or a certificate of the verified chain, is
	// outside its validity period (expired or not yet valid).
	ErrExpired = errors.New("x509: certificate outside its validity period")
	// ErrKeyUsage: the leaf's KeyUsage lacks digitalSignature, or its
	// ExtKeyUsage does not list clientAuth.
	ErrKeyUsage = errors.New("x509: leaf key usage does not allow client authentication")
	// ErrChain: the chain does not verify to the certificate the matching
	// enrollment names (a wrong intermediate, a bad signature, an
	// intermediate that is not a CA).
	ErrChain = errors.New("x509: chain does not verify to the enrollment's certificate")
	// ErrCANotVerified: the matching enrollment references a CA
	// certificate that is not registered, or whose possession was not
	// proved.
	ErrCANotVerified = errors.New("x509: referenced CA certificate is not verified")
)

// MaxChainLength bounds the certificates a device may present, and the
// registered certificates looked up above them, so the work of one
// registration is bounded whatever the device sends.
const MaxChainLength = 8

// MaxCNLength is the longest registration ID a leaf CN may carry (DPS).
const MaxCNLength = 64

// Lookup finds enrollments and registered CA certificates. Not found is
// (nil, nil) or an empty slice, never an error: an error means the lookup
// failed, and Verify returns it wrapped instead of refusing the device.
type Lookup interface {
	// IndividualEnrollment returns the individual enrollment for the
	// registration ID (case-insensitive), or nil, nil.
	IndividualEnrollment(ctx context.Context, registrationID string) (*enrollment.IndividualEnrollment, error)
	// GroupsByKey returns the enrollment groups whose
	// EnrollmentGroup.X509IndexKeys contain key, enabled or not, in a
	// stable order.
	GroupsByKey(ctx context.Context, key string) ([]*enrollment.EnrollmentGroup, error)
	// CACertificate returns the registered CA certificate name, or nil, nil.
	CACertificate(ctx context.Context, name string) (*enrollment.CACertificate, error)
	// CACertificatesByKey returns the registered CA certificates whose
	// CACertificate.IndexKeys contain key, in a stable order.
	CACertificatesByKey(ctx context.Context, key string) ([]*enrollment.CACertificate, error)
}

// Config configures a Verifier.
type Config struct {
	Lookup Lookup
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks X.509 registrations. It is safe for concurrent use.
type Verifier struct {
	lookup Lookup
	now    func() time.Time
}

// New validates cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.Lookup == nil {
		return nil, errors.New("x509: Config.Lookup is required")
	}
	v := &Verifier{lookup: cfg.Lookup, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Result names what admitted the device: exactly one of Enrollment and
// Group is set.
type Result struct {
	Enrollment *enrollment.IndividualEnrollment
	Group      *enrollment.EnrollmentGroup
	// Leaf is the device certificate.
	Leaf *stdx509.Certificate
	// Anchor is the certificate the chain was verified to; nil when an
	// individual enrollment lists the leaf itself.
	Anchor *stdx509.Certificate
	// CAName is the registered CA certificate that anchored the chain, ""
	// when the anchor is a group's signing certificate or there is none.
	CAName string
	// Chain is the verified path, leaf first and Anchor last; the leaf
	// alone when an individual enrollment lists the leaf itself. Only
	// these certificates are authenticated (a DICE policy reads its
	// measurements from them, never from other presented certificates).
	Chain []*stdx509.Certificate
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// Verify authenticates a registration: registrationID is the (decoded) ID
// of the request path, chain the TLS peer certificates, leaf first. See
// the package documentation for the rules and what the caller must still
// check.
func (v *Verifier) Verify(ctx context.Context, registrationID string, chain []*stdx509.Certificate) (*Result, error) {
	if err := checkShape(chain); err != nil {
		return nil, err
	}
	leaf := chain[0]
	if err := checkLeaf(leaf, registrationID, v.now()); err != nil {
		return nil, err
	}

	res, err := v.individual(ctx, registrationID, chain)
	if res != nil || err != nil {
		return res, err
	}
	return v.groups(ctx, chain)
}

// checkShape bounds the chain before any work is done on it.
func checkShape(chain []*stdx509.Certificate) error {
	switch {
	case len(chain) == 0:
		return fmt.Errorf("%w: no client certificate", ErrMalformed)
	case len(chain) > MaxChainLength:
		return fmt.Errorf("%w: %d certificates presented, at most %d are accepted", ErrMalformed, len(chain), MaxChainLength)
	}
	for i, c := range chain {
		if c == nil || len(c.Raw) == 0 {
			return fmt.Errorf("%w: certificate %d is empty", ErrMalformed, i)
		}
	}
	return nil
}

// checkLeaf applies the rules on the leaf alone: CN, validity, key usage.
func checkLeaf(leaf *stdx509.Certificate, registrationID string, now time.Time) error {
	cns := 0
	for _, n := range leaf.Subject.Names {
		if n.Type.Equal(oidCommonName) {
			cns++
		}
	}
	if cns != 1 {
		return fmt.Errorf("%w: the leaf has %d subject common names, exactly one is required", ErrMalformed, cns)
	}
	cn := leaf.Subject.CommonName
	switch {
	case len(cn) > MaxCNLength:
		return fmt.Errorf("%w: the leaf common name has %d characters, at most %d are allowed", ErrCNMismatch, len(cn), MaxCNLength)
	case !strings.EqualFold(cn, registrationID):
		return fmt.Errorf("%w: the leaf common name is not the registration ID", ErrCNMismatch)
	}
	if err := checkValidity(leaf, now); err != nil {
		return err
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&stdx509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%w: KeyUsage lacks digitalSignature", ErrKeyUsage)
	}
	if (len(leaf.ExtKeyUsage) > 0 || len(leaf.UnknownExtKeyUsage) > 0) && !slices.Contains(leaf.ExtKeyUsage, stdx509.ExtKeyUsageClientAuth) {
		return fmt.Errorf("%w: ExtKeyUsage does not list clientAuth", ErrKeyUsage)
	}
	return nil
}

func checkValidity(c *stdx509.Certificate, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: not valid before %s", ErrExpired, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: expired at %s", ErrExpired, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// individual matches the individual enrollment for the registration ID.
// It returns (nil, nil) to go on with the groups: when there is no such
// enrollment, or a disabled one that the chain does not match.
func (v *Verifier) individual(ctx context.Context, registrationID string, chain []*stdx509.Certificate) (*Result, error) {
	ie, err := v.lookup.IndividualEnrollment(ctx, registrationID)
	if err != nil {
		return nil, fmt.Errorf("x509: looking up the enrollment: %w", err)
	}
	if ie == nil {
		return nil, nil
	}
	leaf := chain[0]
	why := fmt.Errorf("%w: the individual enrollment for this registration ID does not use X.509", ErrUnauthorized)
	if ie.Attestation != nil && ie.Attestation.Type == enrollment.AttestationX509 && ie.Attestation.X509 != nil {
		why = fmt.Errorf("%w: the certificate is not the individual enrollment's", ErrUnauthorized)
		if cs := ie.Attestation.X509.ClientCertificates; cs != nil {
			for _, c := range []*enrollment.X509CertificateWithInfo{cs.Primary, cs.Secondary} {
				if c == nil {
					continue
				}
				cert, err := enrollment.ParseCertificate(c.Certificate)
				if err == nil && bytes.Equal(cert.Raw, leaf.Raw) {
					return &Result{Enrollment: ie, Leaf: leaf, Chain: []*stdx509.Certificate{leaf}}, nil
				}
				// A CA certificate listed here is a DICE DeviceID
				// certificate: it admits the leaf (Alias) it issued,
				// whether the device also sends it or not.
				if err == nil && enrollment.IsCA(cert) {
					path, verr := v.verifyChain(leaf, chain[1:], cert)
					if verr == nil {
						return &Result{Enrollment: ie, Leaf: leaf, Anchor: cert, Chain: path}, nil
					}
					why = verr
				}
			}
		}
		for _, name := range ie.Attestation.CAReferenceNames() {
			ca, err := v.lookup.CACertificate(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("x509: looking up CA certificate: %w", err)
			}
			anchor, err := usableCA(ca, name)
			var path []*stdx509.Certificate
			if err == nil {
				path, err = v.verifyChain(chain[0], chain[1:], anchor)
			}
			if err == nil {
				return &Result{Enrollment: ie, Leaf: leaf, Anchor: anchor, CAName: ca.Name, Chain: path}, nil
			}
			why = err
		}
	}
	if ie.Enabled() {
		// An individually enrolled device is not taken over by a group.
		return nil, why
	}
	return nil, nil
}

// usableCA returns the certificate of a registered CA that may anchor
// chains: one that exists and is verified.
func usableCA(ca *enrollment.CACertificate, name string) (*stdx509.Certificate, error) {
	switch {
	case ca == nil:
		return nil, fmt.Errorf("%w: CA certificate %q is not registered", ErrCANotVerified, name)
	case !ca.IsVerified:
		return nil, fmt.Errorf("%w: CA certificate %q has not been verified by proof of possession", ErrCANotVerified, ca.Name)
	}
	cert, err := ca.Parsed()
	if err != nil {
		return nil, fmt.Errorf("%w: CA certificate %q does not parse", ErrCANotVerified, ca.Name)
	}
	return cert, nil
}

// claim is one enrollment group naming one certificate, directly or
// through a registered CA certificate.
type claim struct {
	cert  *stdx509.Certificate
	group *enrollment.EnrollmentGroup
	ca    *enrollment.CACertificate // nil for signingCertificates
}

// groups walks up from the leaf to the first certificate an enrollment
// group names, and verifies the chain to it.
func (v *Verifier) groups(ctx context.Context, chain []*stdx509.Certificate) (*Result, error) {
	leaf := chain[0]
	// The presented certificates above the leaf, by thumbprint.
	for i := 1; i < len(chain); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		claims, err := v.claimsFor(ctx, enrollment.CertificateThumbprintKey(chain[i]), func(c *stdx509.Certificate) bool {
			return bytes.Equal(c.Raw, chain[i].Raw)
		})
		if err != nil {
			return nil, err
		}
		if len(claims) > 0 {
			return v.decide(leaf, chain[1:i], claims)
		}
	}
	// Then registered certificates that issued the top of the chain, up
	// to MaxChainLength certificates in all.
	path := slices.Clone(chain)
	for len(path) <= MaxChainLength {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		top := path[len(path)-1]
		if len(path) > 1 && bytes.Equal(top.RawIssuer, top.RawSubject) {
			break // a self-signed root: nothing above it
		}
		issued := func(c *stdx509.Certificate) bool {
			return bytes.Equal(c.RawSubject, top.RawIssuer) && mayHaveIssued(top, c) &&
				!slices.ContainsFunc(path, func(p *stdx509.Certificate) bool { return bytes.Equal(p.Raw, c.Raw) })
		}
		claims, err := v.claimsFor(ctx, enrollment.SubjectKey(top.RawIssuer), issued)
		if err != nil {
			return nil, err
		}
		if len(claims) > 0 {
			return v.decide(leaf, path[1:], claims)
		}
		next, err := v.registeredIssuer(ctx, top, issued)
		if err != nil {
			return nil, err
		}
		if next == nil {
			break
		}
		path = append(path, next)
	}
	return nil, fmt.Errorf("%w: no enrollment names the certificate or a CA above it (unknown CA)", ErrUnauthorized)
}

// mayHaveIssued tells whether issuer's key signed c. When c names its
// issuer's key identifier and issuer has one, comparing them is enough to
// pick candidates: a claim is only accepted after decide verifies the
// whole chain to it, and a chain that lies about its authority key
// identifier is refused there, so this saves one ECDSA verification per
// registration without accepting anything more. Without identifiers the
// signature decides.
func mayHaveIssued(c, issuer *stdx509.Certificate) bool {
	if len(c.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 {
		return bytes.Equal(c.AuthorityKeyId, issuer.SubjectKeyId)
	}
	return c.CheckSignatureFrom(issuer) == nil
}

// claimsFor returns the groups that name a certificate with index value
// key that match accepts: through signingCertificates, or through
// caReferences to a registered CA certificate.
func (v *Verifier) claimsFor(ctx context.Context, key string, match func(*stdx509.Certificate) bool) ([]claim, error) {
	var out []claim
	groups, err := v.lookup.GroupsByKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("x509: looking up enrollment groups: %w", err)
	}
	for _, g := range groups {
		for _, c := range signingCertificates(g) {
			if match(c) {
				out = append(out, claim{cert: c, group: g})
				break
			}
		}
	}
	cas, err := v.lookup.CACertificatesByKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("x509: looking up CA certificates: %w", err)
	}
	for _, ca := range cas {
		c, err := ca.Parsed()
		if err != nil || !match(c) {
			continue
		}
		groups, err := v.lookup.GroupsByKey(ctx, enrollment.CAReferenceKey(ca.Name))
		if err != nil {
			return nil, fmt.Errorf("x509: looking up enrollment groups: %w", err)
		}
		for _, g := range groups {
			if g.Attestation != nil && slices.ContainsFunc(g.Attestation.CAReferenceNames(), func(n string) bool { return strings.EqualFold(n, ca.Name) }) {
				out = append(out, claim{cert: c, group: g, ca: ca})
			}
		}
	}
	return out, nil
}

// registeredIssuer returns a registered CA certificate that issued top and
// that no group names, to continue the walk above it; nil when none.
func (v *Verifier) registeredIssuer(ctx context.Context, top *stdx509.Certificate, issued func(*stdx509.Certificate) bool) (*stdx509.Certificate, error) {
	cas, err := v.lookup.CACertificatesByKey(ctx, enrollment.SubjectKey(top.RawIssuer))
	if err != nil {
		return nil, fmt.Errorf("x509: looking up CA certificates: %w", err)
	}
	for _, ca := range cas {
		if c, err := ca.Parsed(); err == nil && issued(c) {
			return c, nil
		}
	}
	return nil, nil
}

func signingCertificates(g *enrollment.EnrollmentGroup) []*stdx509.Certificate {
	if g == nil || g.Attestation == nil || g.Attestation.Type != enrollment.AttestationX509 ||
		g.Attestation.X509 == nil || g.Attestation.X509.SigningCertificates == nil {
		return nil
	}
	sc := g.Attestation.X509.SigningCertificates
	var out []*stdx509.Certificate
	for _, c := range []*enrollment.X509CertificateWithInfo{sc.Primary, sc.Secondary} {
		if c == nil {
			continue
		}
		if cert, err := enrollment.ParseCertificate(c.Certificate); err == nil {
			out = append(out, cert)
		}
	}
	return out
}

// decide verifies the chain to each claimed certificate (once per
// certificate) and picks the match: a disabled group when there is one
// (revocation wins), else the first.
func (v *Verifier) decide(leaf *stdx509.Certificate, intermediates []*stdx509.Certificate, claims []claim) (*Result, error) {
	type outcome struct {
		path []*stdx509.Certificate
		err  error
	}
	verified := map[string]outcome{}
	var matches []claim
	var firstErr error
	for _, cl := range claims {
		var err error
		if cl.ca != nil {
			_, err = usableCA(cl.ca, cl.ca.Name)
		}
		if err == nil {
			k := string(cl.cert.Raw)
			o, done := verified[k]
			if !done {
				o.path, o.err = v.verifyChain(leaf, intermediates, cl.cert)
				verified[k] = o
			}
			err = o.err
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("enrollment group %q: %w", cl.group.EnrollmentGroupID, err)
			}
			continue
		}
		matches = append(matches, cl)
	}
	if len(matches) == 0 {
		return nil, firstErr
	}
	pick := matches[0]
	for _, m := range matches {
		if !m.group.Enabled() {
			pick = m
			break
		}
	}
	res := &Result{Group: pick.group, Leaf: leaf, Anchor: pick.cert, Chain: verified[string(pick.cert.Raw)].path}
	if pick.ca != nil {
		res.CAName = pick.ca.Name
	}
	return res, nil
}

// verifyChain runs crypto/x509 path validation from leaf to anchor, the
// only root, for client authentication at the injected time, and returns
// the verified path (leaf first, anchor last). Critical TCG DICE
// extensions that attestation/dice parses are not "unhandled"
// (docs/protocol.md#dice-measurements); any other unhandled critical
// extension, anywhere in the path, still fails it.
func (v *Verifier) verifyChain(leaf *stdx509.Certificate, intermediates []*stdx509.Certificate, anchor *stdx509.Certificate) ([]*stdx509.Certificate, error) {
	if !enrollment.IsCA(anchor) {
		return nil, fmt.Errorf("%w: the enrollment's certificate is not a CA certificate", ErrChain)
	}
	roots := stdx509.NewCertPool()
	roots.AddCert(dice.AcceptUnderstood(anchor))
	inter := stdx509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(dice.AcceptUnderstood(c))
	}
	chains, err := dice.AcceptUnderstood(leaf).Verify(stdx509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   v.now(),
		KeyUsages:     []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageClientAuth},
	})
	if err == nil && len(chains) > 0 {
		return chains[0], nil
	}
	var inv stdx509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == stdx509.Expired {
		return nil, fmt.Errorf("%w: %v", ErrExpired, err)
	}
	return nil, fmt.Errorf("%w: %v", ErrChain, err)
}
