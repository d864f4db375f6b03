package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"

	"github.com/zdps/zdps/internal/ca/castate"
)

// CA is a loaded certificate authority, safe for concurrent use. It follows
// the stored state: Reload (and Watch, which polls it) switches it to a
// rotated intermediate without a restart, so every replica on a shared
// store moves together.
type CA struct {
	cur atomic.Pointer[gen]
	cfg Config // to reload: storage, sealer key, KMS

	leafValidity time.Duration
	crlURL       string
	now          func() time.Time
	rand         io.Reader
	log          *slog.Logger
}

// gen is one loaded state: what the CA signs with until the next rotation.
type gen struct {
	Blob        []byte // the stored state it was decoded from
	Root, Inter *x509.Certificate
	// issuer is inter as the signing functions see it: a copy that always
	// has a SubjectKeyId, which Go copies into every AuthorityKeyId and
	// requires for CRLs. An imported intermediate may lack one.
	Issuer    *x509.Certificate
	Signer    crypto.Signer // the intermediate's key, parsed once (or its KMS handle)
	TLSSigner crypto.Signer // zdps's TLS server key in the KMS; nil: a fresh key per certificate
	KMS       string        // the KMS holding signer, "" when it is sealed in the state
	pool      *x509.CertPool
	bundlePEM []byte
	castate.Lineage
}

// New loads the CA from cfg.Storage or, on first start, creates a root and an
// intermediate and stores them. When two replicas create at once, exactly
// one state is stored and both return that CA.
func New(ctx context.Context, cfg Config) (*CA, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return open(ctx, cfg)
}

// open loads or initialises the CA of a validated configuration.
func open(ctx context.Context, cfg Config) (*CA, error) {
	z, err := castate.NewSealer(cfg.KEK, cfg.Rand)
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
	l, err := castate.Decode(ctx, z, blob, cfg.KMS)
	if err != nil {
		return nil, err
	}
	c := build(cfg, l)
	cfg.Logger.Info("ca loaded",
		"root_subject", l.Root.Subject.String(), "root_not_after", l.Root.NotAfter,
		"intermediate_not_after", l.Inter.NotAfter, "imported", l.Imported, "root_key_held", l.HasRootKey, "kms", l.KMS)
	if now := cfg.Now(); now.After(l.Inter.NotAfter) {
		// Still loaded, so the CRL and bundle stay available while the
		// operator rotates; SignCSR reports ErrCAExpired.
		cfg.Logger.Error("ca intermediate expired", "not_after", l.Inter.NotAfter)
	}
	return c, nil
}

// initialise creates a CA and stores it, or returns the state another
// replica stored first.
func initialise(ctx context.Context, cfg Config, z *castate.Sealer) ([]byte, error) {
	cfg.OfflineRoot = false // New seals the root key; only Create hands it out
	blob, _, err := generate(ctx, cfg, z)
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

// Create makes a new CA and stores it, failing with ErrStateExists when one
// is stored (it never replaces a CA): `zdps ca init`. With cfg.OfflineRoot
// the root's private key is returned (PKCS#8 PEM, for the operator to take
// away) and not stored; otherwise rootKeyPEM is nil.
func Create(ctx context.Context, cfg Config) (c *CA, rootKeyPEM []byte, err error) {
	cfg, err = cfg.WithDefaults()
	if err != nil {
		return nil, nil, err
	}
	if _, err := cfg.Storage.Load(ctx); err == nil {
		return nil, nil, ErrStateExists
	} else if !errors.Is(err, ErrNoState) {
		return nil, nil, err
	}
	z, err := castate.NewSealer(cfg.KEK, cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	blob, rootKey, err := generate(ctx, cfg, z)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Storage.Create(ctx, blob); err != nil {
		return nil, nil, err
	}
	cfg.Logger.Info("ca created", "key_type", string(cfg.KeyType), "offline_root", cfg.OfflineRoot, "kms", kmsType(cfg.KMS))
	if c, err = open(ctx, cfg); err != nil {
		return nil, nil, err
	}
	if cfg.OfflineRoot {
		der, err := x509.MarshalPKCS8PrivateKey(rootKey)
		if err != nil {
			return nil, nil, fmt.Errorf("ca: marshal root key: %w", err)
		}
		rootKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		clear(der)
	}
	return c, rootKeyPEM, nil
}

func kmsType(k KeyStore) string {
	if k == nil {
		return ""
	}
	return k.Type()
}

// generate makes a root and an intermediate and encodes them as a state. It
// returns the root key too, for Create's offline root.
func generate(ctx context.Context, cfg Config, z *castate.Sealer) ([]byte, crypto.Signer, error) {
	crv := cfg.KeyType.Curve()
	rootKey, err := keyutil.GenerateSigner("EC", crv, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	keys := castate.KeySet{Root: rootKey}
	if cfg.OfflineRoot {
		keys.Root = nil
	}
	var interKey crypto.Signer
	if cfg.KMS != nil {
		// Both keys are created inside the KMS: neither ever exists here.
		keys.KMS = cfg.KMS.Type()
		if keys.InterRef, interKey, err = cfg.KMS.CreateKey(ctx, cfg.KeyType, "zdps-ca-intermediate"); err != nil {
			return nil, nil, fmt.Errorf("ca: create intermediate key in %s KMS: %w", keys.KMS, err)
		}
		// TLS keys are always P-256: every client verifies it.
		if keys.TLSRef, _, err = cfg.KMS.CreateKey(ctx, KeyECP256, "zdps-tls"); err != nil {
			return nil, nil, fmt.Errorf("ca: create TLS key in %s KMS: %w", keys.KMS, err)
		}
	} else if interKey, err = keyutil.GenerateSigner("EC", crv, 0); err != nil {
		return nil, nil, fmt.Errorf("ca: generate intermediate key: %w", err)
	}
	keys.Inter = interKey
	root, inter, err := certify(cfg, rootKey, interKey.Public())
	if err != nil {
		return nil, nil, err
	}
	blob, err := castate.Encode(z, cfg.Now(), false, root, inter, keys)
	if err != nil {
		return nil, nil, err
	}
	return blob, rootKey, nil
}

// certify makes the self-signed root of rootKey and the intermediate of
// interPub under it.
func certify(cfg Config, rootKey crypto.Signer, interPub crypto.PublicKey) (root, inter *x509.Certificate, err error) {
	now := cfg.Now()
	// A minute of back-dating absorbs clock skew between replicas and devices.
	nb := now.Add(-time.Minute)

	rootSerial, err := castate.RandomSerial(cfg.Rand)
	if err != nil {
		return nil, nil, err
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
		return nil, nil, fmt.Errorf("ca: create root: %w", err)
	}
	root, err = x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: parse root: %w", err)
	}

	interSerial, err := castate.RandomSerial(cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	interTmpl := castate.IntermediateTemplate(interSerial,
		pkix.Name{Organization: []string{cfg.Organization}, CommonName: cfg.Organization + " Intermediate CA"},
		nb, castate.MinTime(now.Add(cfg.IntermediateValidity), root.NotAfter))
	interDER, err := x509.CreateCertificate(cfg.Rand, interTmpl, root, interPub, rootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: create intermediate: %w", err)
	}
	inter, err = x509.ParseCertificate(interDER)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: parse intermediate: %w", err)
	}
	return root, inter, nil
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
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	root, inter, err := castate.ParsePair(pemutil.ParseCertificate, b.RootPEM, b.IntermediatePEM, ErrInvalidCA)
	if err != nil {
		return nil, err
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
	if err := castate.CheckChain(root, inter); err != nil {
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
	z, err := castate.NewSealer(cfg.KEK, cfg.Rand)
	if err != nil {
		return nil, err
	}
	blob, err := castate.Encode(z, cfg.Now(), true, root, inter, castate.KeySet{Inter: signer})
	if err != nil {
		return nil, err
	}
	if err := cfg.Storage.Create(ctx, blob); err != nil {
		return nil, err
	}
	cfg.Logger.Info("ca imported", "root_subject", root.Subject.String(), "intermediate_not_after", inter.NotAfter)
	return open(ctx, cfg)
}

func build(cfg Config, l *castate.Loaded) *CA {
	c := &CA{
		cfg: cfg, leafValidity: cfg.DefaultLeafValidity, crlURL: cfg.CRLURL,
		now: cfg.Now, rand: cfg.Rand, log: cfg.Logger,
	}
	c.cur.Store(newGen(l))
	return c
}

func newGen(l *castate.Loaded) *gen {
	pool := x509.NewCertPool()
	pool.AddCert(l.Root)
	// A rotated-out root stays trusted (renewal of what it issued) during
	// its overlap.
	for _, r := range l.OldRoots {
		pool.AddCert(r)
	}
	var bundle bytes.Buffer
	_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: l.Inter.Raw})
	for _, a := range l.Above {
		_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: a.Raw})
	}
	// During an overlap the bundle carries the previous intermediates too,
	// so that a verifier given only the bundle accepts certificates of
	// either.
	for _, p := range l.Previous {
		_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: p.Inter.Raw})
	}
	// After a root rotation: the new intermediate issued by the old root
	// too, so that trusting the old root alone is enough.
	for _, c := range l.Cross {
		_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: l.Root.Raw})
	for _, r := range l.OldRoots {
		_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	g := &gen{
		Blob: l.Blob, Root: l.Root, Inter: l.Inter, Issuer: castate.WithSKI(l.Inter), Signer: l.Signer, TLSSigner: l.TLSSigner, KMS: l.KMS,
		pool: pool, bundlePEM: bundle.Bytes(), Lineage: l.Lineage,
	}
	if g.Delegated {
		g.Site, _ = SiteOf(l.Inter)
	}
	return g
}

// KMS returns the type of the KMS holding the intermediate's key ("pkcs11",
// "tpmkms", ...), or "" when the key is sealed in the stored state.
func (c *CA) KMS() string { return c.cur.Load().KMS }

// Root returns the root certificate. Callers must not modify it.
func (c *CA) Root() *x509.Certificate { return c.cur.Load().Root }

// Intermediate returns the issuing certificate. Callers must not modify it.
func (c *CA) Intermediate() *x509.Certificate { return c.cur.Load().Inter }

// Roots returns a new pool holding only the root, to verify what the CA
// issued (device renewal over mTLS, clients of the server certificate).
func (c *CA) Roots() *x509.CertPool { return c.cur.Load().pool.Clone() }

// BundlePEM returns the intermediate then the root, PEM-encoded: the file
// for `openssl verify -CAfile`, NODE_EXTRA_CA_CERTS and `zdps ca export`.
func (c *CA) BundlePEM() []byte { return bytes.Clone(c.cur.Load().bundlePEM) }

// ChainDER returns the intermediate and the root, DER-encoded, in that order.
func (c *CA) ChainDER() [][]byte {
	return c.cur.Load().chainDER()
}

// chainDER is the issuing certificate, those above it and the root.
func (g *gen) chainDER() [][]byte {
	out := [][]byte{bytes.Clone(g.Inter.Raw)}
	for _, a := range g.Above {
		out = append(out, bytes.Clone(a.Raw))
	}
	return append(out, bytes.Clone(g.Root.Raw))
}
