package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"time"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
)

// CA is a loaded certificate authority. It is immutable and safe for
// concurrent use.
type CA struct {
	root, inter *x509.Certificate
	// issuer is inter as the signing functions see it: a copy that always
	// has a SubjectKeyId, which Go copies into every AuthorityKeyId and
	// requires for CRLs. An imported intermediate may lack one.
	issuer    *x509.Certificate
	signer    crypto.Signer // the intermediate's key, parsed once
	pool      *x509.CertPool
	bundlePEM []byte

	leafValidity time.Duration
	crlURL       string
	now          func() time.Time
	rand         io.Reader
	log          *slog.Logger
}

// New loads the CA from cfg.Storage or, on first start, creates a root and an
// intermediate and stores them. When two replicas create at once, exactly
// one state is stored and both return that CA.
func New(ctx context.Context, cfg Config) (*CA, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return open(ctx, cfg)
}

// open loads or initialises the CA of a validated configuration.
func open(ctx context.Context, cfg Config) (*CA, error) {
	z, err := newSealer(cfg.KEK, cfg.Rand)
	if err != nil {
		return nil, err
	}
	blob, err := cfg.Storage.Load(ctx)
	switch {
	case errors.Is(err, ErrNoState):
		blob, err = initialise(ctx, cfg, z)
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	l, err := decodeState(z, blob)
	if err != nil {
		return nil, err
	}
	c := build(cfg, l)
	cfg.Logger.Info("ca loaded",
		"root_subject", l.root.Subject.String(), "root_not_after", l.root.NotAfter,
		"intermediate_not_after", l.inter.NotAfter, "imported", l.imported, "root_key_held", l.hasRootKey)
	if now := cfg.Now(); now.After(l.inter.NotAfter) {
		// Still loaded, so the CRL and bundle stay available while the
		// operator rotates; SignCSR reports ErrCAExpired.
		cfg.Logger.Error("ca intermediate expired", "not_after", l.inter.NotAfter)
	}
	return c, nil
}

// initialise creates a CA and stores it, or returns the state another
// replica stored first.
func initialise(ctx context.Context, cfg Config, z *sealer) ([]byte, error) {
	blob, err := generate(cfg, z)
	if err != nil {
		return nil, err
	}
	err = cfg.Storage.Create(ctx, blob)
	if errors.Is(err, ErrStateExists) {
		cfg.Logger.Info("ca created by another replica; loading it")
		return cfg.Storage.Load(ctx)
	}
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("ca created", "key_type", string(cfg.KeyType))
	return blob, nil
}

func generate(cfg Config, z *sealer) ([]byte, error) {
	crv := "P-256"
	if cfg.KeyType == KeyECP384 {
		crv = "P-384"
	}
	rootKey, err := keyutil.GenerateSigner("EC", crv, 0)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	interKey, err := keyutil.GenerateSigner("EC", crv, 0)
	if err != nil {
		return nil, fmt.Errorf("ca: generate intermediate key: %w", err)
	}
	now := cfg.Now()
	// A minute of back-dating absorbs clock skew between replicas and devices.
	nb := now.Add(-time.Minute)

	rootSerial, err := randomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{Organization: []string{cfg.Organization}, CommonName: cfg.Organization + " Root CA"},
		NotBefore:             nb,
		NotAfter:              now.Add(cfg.RootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Root → intermediate → delegated site CA (siteca.go) → leaf.
		MaxPathLen: 2,
	}
	rootDER, err := x509.CreateCertificate(cfg.Rand, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create root: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("ca: parse root: %w", err)
	}

	interSerial, err := randomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          interSerial,
		Subject:               pkix.Name{Organization: []string{cfg.Organization}, CommonName: cfg.Organization + " Intermediate CA"},
		NotBefore:             nb,
		NotAfter:              minTime(now.Add(cfg.IntermediateValidity), root.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// 1: it signs the delegated site CAs of edge gateways (path
		// length 0 themselves) besides device leaves.
		MaxPathLen: 1,
		// Verifiers (Go, OpenSSL) nest EKUs: this limits anything under the
		// intermediate to device and server TLS, whatever a leaf claims.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	interDER, err := x509.CreateCertificate(cfg.Rand, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create intermediate: %w", err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, fmt.Errorf("ca: parse intermediate: %w", err)
	}
	return encodeState(z, now, false, root, inter, rootKey, interKey)
}

// Bundle is an existing CA for Import.
type Bundle struct {
	// RootPEM is the self-signed root certificate.
	RootPEM []byte
	// IntermediatePEM is the issuing certificate, signed directly by the root.
	IntermediatePEM []byte
	// IntermediateKeyPEM is its private key: PKCS#8, SEC 1 or PKCS#1,
	// optionally encrypted (PKCS#8 PBES2 or legacy OpenSSL PEM encryption).
	IntermediateKeyPEM []byte
	// KeyPassword decrypts an encrypted IntermediateKeyPEM.
	KeyPassword []byte
}

// Import stores an operator's existing CA, sealed under cfg.KEK, and returns
// it loaded. The root key stays with the operator. It fails with
// ErrStateExists when a CA is already stored (it never overwrites one) and
// with ErrInvalidCA when the bundle is unusable.
func Import(ctx context.Context, cfg Config, b Bundle) (*CA, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	root, err := pemutil.ParseCertificate(b.RootPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: root: %w", ErrInvalidCA, err)
	}
	inter, err := pemutil.ParseCertificate(b.IntermediatePEM)
	if err != nil {
		return nil, fmt.Errorf("%w: intermediate: %w", ErrInvalidCA, err)
	}
	var opts []pemutil.Options
	if len(b.KeyPassword) > 0 {
		opts = append(opts, pemutil.WithPassword(b.KeyPassword))
	}
	k, err := pemutil.ParseKey(b.IntermediateKeyPEM, opts...)
	if err != nil {
		// pemutil's message may quote the input; do not wrap it with key
		// material anywhere near a log.
		return nil, fmt.Errorf("%w: intermediate key cannot be parsed (wrong password or format)", ErrInvalidCA)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: intermediate key is not a private signing key", ErrInvalidCA)
	}
	if err := checkChain(root, inter); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if err := checkCAKey(inter.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if err := keyutil.VerifyPair(inter.PublicKey, signer); err != nil {
		return nil, fmt.Errorf("%w: intermediate key does not match the intermediate certificate", ErrInvalidCA)
	}
	if now := cfg.Now(); now.Before(inter.NotBefore) || now.After(inter.NotAfter) {
		return nil, fmt.Errorf("%w: intermediate is not valid now (%s to %s)", ErrInvalidCA, inter.NotBefore, inter.NotAfter)
	}
	z, err := newSealer(cfg.KEK, cfg.Rand)
	if err != nil {
		return nil, err
	}
	blob, err := encodeState(z, cfg.Now(), true, root, inter, nil, signer)
	if err != nil {
		return nil, err
	}
	if err := cfg.Storage.Create(ctx, blob); err != nil {
		return nil, err
	}
	cfg.Logger.Info("ca imported", "root_subject", root.Subject.String(), "intermediate_not_after", inter.NotAfter)
	return open(ctx, cfg)
}

// checkChain checks what every stored or imported CA must satisfy.
func checkChain(root, inter *x509.Certificate) error {
	if !root.BasicConstraintsValid || !root.IsCA {
		return errors.New("root is not a CA certificate")
	}
	if !bytes.Equal(root.RawIssuer, root.RawSubject) {
		return errors.New("root is not self-issued")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("root is not self-signed: %w", err)
	}
	if bytes.Equal(root.Raw, inter.Raw) {
		return errors.New("intermediate is the root; an issuing intermediate is required")
	}
	if !inter.BasicConstraintsValid || !inter.IsCA {
		return errors.New("intermediate is not a CA certificate")
	}
	// x509.CreateRevocationList and verifiers need both bits.
	if inter.KeyUsage&x509.KeyUsageCertSign == 0 || inter.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return errors.New("intermediate lacks the keyCertSign or cRLSign key usage")
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("intermediate is not signed by the root: %w", err)
	}
	return nil
}

func build(cfg Config, l *loaded) *CA {
	pool := x509.NewCertPool()
	pool.AddCert(l.root)
	var bundle bytes.Buffer
	_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: l.inter.Raw})
	_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: l.root.Raw})
	issuer := l.inter
	if len(issuer.SubjectKeyId) == 0 {
		cp := *l.inter
		cp.SubjectKeyId = keyID(l.inter.PublicKey)
		issuer = &cp
	}
	return &CA{
		root: l.root, inter: l.inter, issuer: issuer, signer: l.signer, pool: pool, bundlePEM: bundle.Bytes(),
		leafValidity: cfg.DefaultLeafValidity, crlURL: cfg.CRLURL,
		now: cfg.Now, rand: cfg.Rand, log: cfg.Logger,
	}
}

// Root returns the root certificate. Callers must not modify it.
func (c *CA) Root() *x509.Certificate { return c.root }

// Intermediate returns the issuing certificate. Callers must not modify it.
func (c *CA) Intermediate() *x509.Certificate { return c.inter }

// Roots returns a new pool holding only the root, to verify what the CA
// issued (device renewal over mTLS, clients of the server certificate).
func (c *CA) Roots() *x509.CertPool { return c.pool.Clone() }

// BundlePEM returns the intermediate then the root, PEM-encoded: the file
// for `openssl verify -CAfile`, NODE_EXTRA_CA_CERTS and `zdps ca export`.
func (c *CA) BundlePEM() []byte { return bytes.Clone(c.bundlePEM) }

// ChainDER returns the intermediate and the root, DER-encoded, in that order.
func (c *CA) ChainDER() [][]byte {
	return [][]byte{bytes.Clone(c.inter.Raw), bytes.Clone(c.root.Raw)}
}

// randomSerial returns a positive, non-zero 128-bit serial: far above the
// 64 random bits the CA/Browser Forum asks for, so collisions and prediction
// are out of reach without any record of issued serials.
func randomSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	for range 4 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("ca: serial: %w", err)
		}
		if s := new(big.Int).SetBytes(b); s.Sign() > 0 {
			return s, nil
		}
	}
	return nil, errors.New("ca: serial: random source returned only zeros")
}

// keyID is the SubjectKeyIdentifier of pub: the SHA-256 of the
// subjectPublicKey bits truncated to 160 bits (RFC 7093 method 1), the
// method Go itself uses for CA certificates.
func keyID(pub crypto.PublicKey) []byte {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil
	}
	h := sha256.Sum256(info.PublicKey.Bytes)
	return h[:20]
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
