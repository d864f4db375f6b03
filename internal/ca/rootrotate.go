package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"

	"go.step.sm/crypto/keyutil"

	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/store"
)

// RootRotation is what RotateRoot did.
type RootRotation struct {
	Rotation
	OldRoot, NewRoot *x509.Certificate
	// Cross is the new intermediate's certificate issued by the old root:
	// in the bundle during the overlap, it lets verifiers that trust only
	// the old root accept what the new intermediate issues.
	Cross *x509.Certificate
	// NewRootKeyPEM is the new root's key when Config.OfflineRoot asked
	// for it to be handed out (and not stored); nil otherwise.
	NewRootKeyPEM []byte
}

// RotateRoot replaces the root: a new self-signed root, a new intermediate
// under it, and that intermediate cross-signed by the old root's key (which
// must be in the state) (its key in cfg.KMS when set, else sealed). The
// old root stays trusted and in the bundle, with the old intermediate, for
// opts.Overlap, so devices and hubs that trust only the old root keep
// working while they receive the new one. With cfg.OfflineRoot the new
// root's key is handed out instead of stored.
func RotateRoot(ctx context.Context, cfg Config, o RotateOptions) (*RootRotation, error) {
	start, err := loadForRotation(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	cfg, sw, z, blob, s, l := start.cfg, start.sw, start.z, start.Blob, start.s, start.l
	if s.RootKey == nil {
		return nil, fmt.Errorf("%w: the root key is offline: a root rotation needs it to cross-sign the new root", ErrInvalidCA)
	}
	oldKey, err := castate.OpenKey(z, castate.RoleRoot, &s, s.RootKey, l.Root)
	if err != nil {
		return nil, err
	}
	now := cfg.Now()
	overlap := o.Overlap
	if overlap <= 0 {
		overlap = cfg.DefaultLeafValidity
	}
	keepUntil := minTime(now.Add(overlap), l.Root.NotAfter)
	r := &RootRotation{OldRoot: l.Root}
	r.Old, r.KeepUntil, r.Generation = l.Inter, keepUntil, l.Generation+1

	kt := KeyECP256
	if isP384(l.Root.PublicKey) {
		kt = KeyECP384
	}
	newKey, err := keyutil.GenerateSigner("EC", curveOf(kt), 0)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	org := orgOf(l.Root)
	serial, err := randomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{org}, CommonName: fmt.Sprintf("%s Root CA %d", org, r.Generation+1)},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(cfg.RootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Root → intermediate → delegated site CA (siteca.go) → leaf.
		MaxPathLen:   2,
		SubjectKeyId: castate.KeyID(newKey.Public()),
	}
	der, err := x509.CreateCertificate(cfg.Rand, tmpl, tmpl, newKey.Public(), newKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create root: %w", err)
	}
	if r.NewRoot, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	// The intermediate under the new root.
	keys := castate.KeySet{Root: newKey, Generation: r.Generation}
	var interKey crypto.Signer
	if cfg.KMS != nil {
		keys.KMS = cfg.KMS.Type()
		if keys.InterRef, interKey, err = cfg.KMS.CreateKey(ctx, kt, "zdps-ca-intermediate"); err != nil {
			return nil, fmt.Errorf("ca: create intermediate key in %s KMS: %w", keys.KMS, err)
		}
		if keys.TLSRef = l.TLSRef; keys.TLSRef == "" || l.KMS != keys.KMS {
			if keys.TLSRef, _, err = cfg.KMS.CreateKey(ctx, KeyECP256, "zdps-tls"); err != nil {
				return nil, fmt.Errorf("ca: create TLS key in %s KMS: %w", keys.KMS, err)
			}
		}
	} else if interKey, err = keyutil.GenerateSigner("EC", curveOf(kt), 0); err != nil {
		return nil, fmt.Errorf("ca: generate intermediate key: %w", err)
	}
	keys.Inter = interKey
	interSerial, err := randomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	itmpl := intermediateTemplate(interSerial, nextSubject(l.Inter, r.Generation), now.Add(-time.Minute), minTime(now.Add(cfg.IntermediateValidity), r.NewRoot.NotAfter))
	if der, err = x509.CreateCertificate(cfg.Rand, itmpl, r.NewRoot, interKey.Public(), newKey); err != nil {
		return nil, fmt.Errorf("ca: create intermediate: %w", err)
	}
	if r.New, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	// The cross certificate: the new intermediate again (same subject,
	// key and key ID), issued by the old root. Leaves then chain to the
	// old root through it with one intermediate, within the old root's
	// path length (zdps roots allow one).
	if r.Cross, err = crossSign(cfg, r.New, l.Root, oldKey); err != nil {
		return nil, err
	}

	// History: the old intermediate and every earlier one now chain to a
	// root that is no longer the state's; say which.
	out, err := outgoing(z, l, now, keepUntil)
	if err != nil {
		return nil, err
	}
	for _, p := range append(append([]castate.PreviousState(nil), l.PrevState...), out) {
		if now.After(p.KeepUntil) {
			r.Steps = append(r.Steps, Step{Action: "ca.retire", Resource: "ca/intermediate/" + serialOf(p.Intermediate), Detail: "overlap ended " + p.KeepUntil.UTC().Format(time.RFC3339)})
			continue
		}
		if p.Root == nil {
			p.Root = l.Root.Raw
		}
		keys.Previous = append(keys.Previous, p)
	}
	// The old root's key stays, sealed, to cross-sign the intermediates
	// of later rotations during the overlap.
	sealedOld, err := sealRootKey(z, l.Root, oldKey)
	if err != nil {
		return nil, err
	}
	keys.PreviousRoots = append(append([]castate.PreviousRoot(nil), l.RootsKept...), castate.PreviousRoot{Root: l.Root.Raw, KeepUntil: keepUntil.UTC(), Key: sealedOld})
	keys.PreviousRoots, keys.Previous, r.Steps = keepRoots(keys.PreviousRoots, keys.Previous, now, r.Steps)
	keys.Cross = append(keepCross(s.Cross, keys.PreviousRoots, keys.Previous), r.Cross.Raw)
	if cfg.OfflineRoot {
		der, err := x509.MarshalPKCS8PrivateKey(newKey)
		if err != nil {
			return nil, err
		}
		r.NewRootKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		clear(der)
		keys.Root = nil
	}
	newBlob, err := castate.Encode(z, now, l.Imported, r.NewRoot, r.New, keys)
	if err != nil {
		return nil, err
	}
	r.Steps = append(r.Steps, Step{Action: "ca.rotate-root", Resource: "ca/root/" + serialOf(r.NewRoot.Raw),
		Detail: fmt.Sprintf("generation %d, cross-signed by %s, which is trusted until %s; intermediate %s", r.Generation, serialOf(l.Root.Raw), keepUntil.UTC().Format(time.RFC3339), serialOf(r.New.Raw))})
	if err := sw.Swap(ctx, blob, newBlob, func(tx store.Tx) error {
		if o.Audit == nil {
			return nil
		}
		return o.Audit(ctx, tx, r.Steps)
	}); err != nil {
		return nil, err
	}
	cfg.Logger.Info("ca root rotated", "generation", r.Generation, "new_root_serial", serialOf(r.NewRoot.Raw), "keep_until", keepUntil)
	return r, nil
}

// outgoing is the current intermediate as a previous one: its key (or KMS
// reference) sealed bound to the root and its certificate.
func outgoing(z *castate.Sealer, l *castate.Loaded, now, keepUntil time.Time) (castate.PreviousState, error) {
	out := castate.PreviousState{Intermediate: l.Inter.Raw, KMS: l.KMS, RotatedAt: now.UTC(), KeepUntil: keepUntil.UTC()}
	var err error
	if l.InterRef != "" {
		out.KeyRef, err = z.SealAD(castate.ADFor(castate.RolePreviousRef, l.Root.Raw, l.Inter.Raw), []byte(l.InterRef))
		return out, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(l.Signer)
	if err != nil {
		return out, fmt.Errorf("ca: marshal intermediate key: %w", err)
	}
	out.Key, err = z.SealAD(castate.ADFor(castate.RolePrevious, l.Root.Raw, l.Inter.Raw), der)
	clear(der)
	return out, err
}

// PreviousRoot is a root rotated out, still trusted until KeepUntil.
type PreviousRoot struct {
	Certificate *x509.Certificate
	KeepUntil   time.Time
}

// PreviousRoots returns the roots rotated out during their overlap.
func (c *CA) PreviousRoots() []PreviousRoot {
	g := c.cur.Load()
	out := make([]PreviousRoot, 0, len(g.OldRoots))
	for i, r := range g.OldRoots {
		out = append(out, PreviousRoot{Certificate: r, KeepUntil: g.RootsKept[i].KeepUntil})
	}
	return out
}

// Cross returns the intermediates issued again by a previous root, during
// its overlap.
func (c *CA) Cross() []*x509.Certificate { return c.cur.Load().Cross }

// crossSign issues inter again under root (same subject, key and key ID),
// no longer valid than either: leaves of inter then chain to root with one
// intermediate, within a zdps root's path length.
func crossSign(cfg Config, inter, root *x509.Certificate, rootKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := randomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	tmpl := intermediateTemplate(serial, inter.Subject, inter.NotBefore, minTime(inter.NotAfter, root.NotAfter))
	tmpl.SubjectKeyId = inter.SubjectKeyId
	der, err := x509.CreateCertificate(cfg.Rand, tmpl, castate.WithSKI(root), inter.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("ca: cross-sign the intermediate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func sealRootKey(z *castate.Sealer, root *x509.Certificate, key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	return z.SealAD(castate.ADFor(castate.RolePrevRootKey, root.Raw, root.Raw), der)
}

// newestRootKey opens the key of the newest previous root that has one.
func newestRootKey(z *castate.Sealer, roots []castate.PreviousRoot) (*x509.Certificate, crypto.Signer, error) {
	for i := len(roots) - 1; i >= 0; i-- {
		if roots[i].Key == nil {
			continue
		}
		root, err := x509.ParseCertificate(roots[i].Root)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		der, err := z.OpenAD(castate.RolePrevRootKey, castate.ADFor(castate.RolePrevRootKey, root.Raw, root.Raw), roots[i].Key)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s does not open", ErrCorruptState, castate.RolePrevRootKey)
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		clear(der)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok || keyutil.VerifyPair(root.PublicKey, signer) != nil {
			return nil, nil, fmt.Errorf("%w: previous root key does not match its root", ErrCorruptState)
		}
		return root, signer, nil
	}
	return nil, nil, nil
}

// keepCross keeps the cross certificates whose issuing root is still kept
// and whose intermediate is still in use (one of prev, or about to be
// checked against the new current one by the caller).
func keepCross(cross [][]byte, roots []castate.PreviousRoot, prev []castate.PreviousState) [][]byte {
	var kept [][]byte
	for _, der := range cross {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		issuerKept := false
		for _, r := range roots {
			if rc, err := x509.ParseCertificate(r.Root); err == nil && c.CheckSignatureFrom(rc) == nil {
				issuerKept = true
			}
		}
		inUse := false
		for _, p := range prev {
			if pc, err := x509.ParseCertificate(p.Intermediate); err == nil && keyutil.Equal(pc.PublicKey, c.PublicKey) {
				inUse = true
			}
		}
		if issuerKept && inUse {
			kept = append(kept, der)
		}
	}
	return kept
}
