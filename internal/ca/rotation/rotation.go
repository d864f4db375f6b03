package rotation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"time"

	"go.step.sm/crypto/keyutil"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/store"
)

// RotateOptions tune Rotate.
type RotateOptions struct {
	// Overlap is how long the outgoing intermediate stays in the bundle,
	// with its key to sign its CRL: the longest validity of the
	// certificates it issued (zdps serve --cert-validity). Zero means
	// Config.DefaultLeafValidity. Capped at that intermediate's NotAfter.
	Overlap time.Duration
	// Audit, when set, runs in the transaction that stores the rotation,
	// with the steps taken ("ca.rotate", "ca.retire").
	Audit func(ctx context.Context, tx store.Tx, steps []Step) error
	// Intermediate is the next intermediate's certificate, signed by an
	// offline root (zdps ca sign-intermediate) for the key PrepareRotation
	// made. Required when the root key is not in the state; ignored
	// otherwise.
	Intermediate *x509.Certificate
}

// Step is one change a rotation made, for the audit trail and the CLI.
type Step struct {
	Action   string // "ca.rotate" or "ca.retire"
	Resource string // "ca/intermediate/<serial hex>"
	Detail   string
}

// Rotation is what Rotate did.
type Rotation struct {
	Old, New   *x509.Certificate
	KeepUntil  time.Time // the old intermediate leaves the bundle then
	Generation int
	Steps      []Step
}

// Rotate replaces the issuing intermediate: a new key (in cfg.KMS when set,
// else sealed in the state), a certificate for it signed by the root key
// held in the state, and the outgoing intermediate kept in the bundle and
// able to sign its CRL until opts.Overlap has passed. Intermediates whose
// overlap ended are retired. Running CAs switch when they reload (Watch).
// The root key must be in the state: with an offline root, sign the new
// intermediate with `zdps ca sign-intermediate` (not automated yet).
func Rotate(ctx context.Context, cfg ca.Config, o RotateOptions) (*Rotation, error) {
	start, err := loadForRotation(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	cfg, sw, z, blob, s, l := start.cfg, start.sw, start.z, start.Blob, start.s, start.l
	var rootKey crypto.Signer
	if s.RootKey != nil {
		if rootKey, err = castate.OpenKey(z, castate.RoleRoot, &s, s.RootKey, l.Root); err != nil {
			return nil, err
		}
	} else if o.Intermediate == nil {
		return nil, fmt.Errorf("%w: the root key is offline: make the next key and its CSR (zdps ca rotate --csr-out), sign it with zdps ca sign-intermediate, then install it (zdps ca rotate --intermediate-cert)", ca.ErrInvalidCA)
	}
	now := cfg.Now()
	overlap := o.Overlap
	if overlap <= 0 {
		overlap = cfg.DefaultLeafValidity
	}
	r := &Rotation{Old: l.Inter, KeepUntil: castate.MinTime(now.Add(overlap), l.Inter.NotAfter), Generation: l.Generation + 1}

	// History: drop what has served its overlap, then add the outgoing one.
	var prev []castate.PreviousState
	for _, p := range l.PrevState {
		if now.After(p.KeepUntil) {
			r.Steps = append(r.Steps, Step{Action: "ca.retire", Resource: "ca/intermediate/" + castate.SerialOf(p.Intermediate), Detail: "overlap ended " + p.KeepUntil.UTC().Format(time.RFC3339)})
			continue
		}
		prev = append(prev, p)
	}
	out, err := outgoing(z, l, now, r.KeepUntil)
	if err != nil {
		return nil, err
	}
	prev = append(prev, out)

	keys := castate.KeySet{Root: rootKey, Generation: r.Generation, Previous: prev}
	keys.PreviousRoots, keys.Previous, r.Steps = keepRoots(s.PreviousRoots, keys.Previous, now, r.Steps)
	// Cross certificates go with the root that issued them and the
	// intermediate they are for (the outgoing one is in keys.previous now).
	keys.Cross = keepCross(s.Cross, keys.PreviousRoots, keys.Previous)
	// The new key is of the outgoing one's size.
	kt := ca.KeyECP256
	if isP384(l.Inter.PublicKey) {
		kt = ca.KeyECP384
	}
	var interKey crypto.Signer
	switch {
	case rootKey == nil:
		// Offline root: the key PrepareRotation made, the certificate the
		// operator brought.
		if s.Pending == nil {
			return nil, fmt.Errorf("%w: no next key is pending: run zdps ca rotate --csr-out first", ca.ErrInvalidCA)
		}
		var ref string
		if interKey, ref, err = castate.OpenPending(ctx, z, l.Root, s.Pending, cfg.KMS); err != nil {
			return nil, err
		}
		if err := castate.CheckChain(l.Root, o.Intermediate); err != nil {
			return nil, fmt.Errorf("%w: %w", ca.ErrInvalidCA, err)
		}
		if err := keyutil.VerifyPair(o.Intermediate.PublicKey, interKey); err != nil {
			return nil, fmt.Errorf("%w: the certificate is not for the pending key (its CSR)", ca.ErrInvalidCA)
		}
		if now.Before(o.Intermediate.NotBefore) || !now.Before(o.Intermediate.NotAfter) {
			return nil, fmt.Errorf("%w: the certificate is not valid now", ca.ErrInvalidCA)
		}
		keys.KMS, keys.InterRef, r.New = s.Pending.KMS, ref, o.Intermediate
		if keys.KMS != "" {
			if keys.TLSRef = l.TLSRef; keys.TLSRef == "" || l.KMS != keys.KMS {
				if keys.TLSRef, _, err = cfg.KMS.CreateKey(ctx, ca.KeyECP256, "zdps-tls"); err != nil {
					return nil, fmt.Errorf("ca: create TLS key in %s KMS: %w", keys.KMS, err)
				}
			}
		}
	case cfg.KMS != nil:
		keys.KMS = cfg.KMS.Type()
		if keys.InterRef, interKey, err = cfg.KMS.CreateKey(ctx, kt, "zdps-ca-intermediate"); err != nil {
			return nil, fmt.Errorf("ca: create intermediate key in %s KMS: %w", keys.KMS, err)
		}
		keys.TLSRef = l.TLSRef
		if keys.TLSRef == "" || l.KMS != keys.KMS {
			if keys.TLSRef, _, err = cfg.KMS.CreateKey(ctx, ca.KeyECP256, "zdps-tls"); err != nil {
				return nil, fmt.Errorf("ca: create TLS key in %s KMS: %w", keys.KMS, err)
			}
		}
	default:
		if interKey, err = keyutil.GenerateSigner("EC", kt.Curve(), 0); err != nil {
			return nil, fmt.Errorf("ca: generate intermediate key: %w", err)
		}
	}
	keys.Inter = interKey
	if r.New == nil {
		serial, err := castate.RandomSerial(cfg.Rand)
		if err != nil {
			return nil, err
		}
		subj := nextSubject(l.Inter, r.Generation)
		tmpl := castate.IntermediateTemplate(serial, subj, now.Add(-time.Minute), castate.MinTime(now.Add(cfg.IntermediateValidity), l.Root.NotAfter))
		der, err := x509.CreateCertificate(cfg.Rand, tmpl, l.Root, interKey.Public(), rootKey)
		if err != nil {
			return nil, fmt.Errorf("ca: create intermediate: %w", err)
		}
		if r.New, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
	}
	// During a root's overlap, the new intermediate is issued by the
	// previous root too, so that its leaves verify for whoever trusts only
	// that root.
	if oldRoot, oldKey, err := newestRootKey(z, keys.PreviousRoots); err != nil {
		return nil, err
	} else if oldKey != nil {
		cross, err := crossSign(cfg, r.New, oldRoot, oldKey)
		if err != nil {
			return nil, err
		}
		keys.Cross = append(keys.Cross, cross.Raw)
	}
	newBlob, err := castate.Encode(z, now, l.Imported, l.Root, r.New, keys)
	if err != nil {
		return nil, err
	}
	where := "sealed in the store"
	if keys.KMS != "" {
		where = "in the " + keys.KMS + " KMS"
	}
	r.Steps = append(r.Steps, Step{Action: "ca.rotate", Resource: "ca/intermediate/" + castate.SerialOf(r.New.Raw),
		Detail: fmt.Sprintf("generation %d, key %s; previous %s kept until %s", r.Generation, where, castate.SerialOf(l.Inter.Raw), r.KeepUntil.UTC().Format(time.RFC3339))})
	also := func(tx store.Tx) error {
		if o.Audit == nil {
			return nil
		}
		return o.Audit(ctx, tx, r.Steps)
	}
	if err := sw.Swap(ctx, blob, newBlob, also); err != nil {
		return nil, err
	}
	cfg.Logger.Info("ca rotated", "generation", r.Generation, "old_serial", castate.SerialOf(l.Inter.Raw), "new_serial", castate.SerialOf(r.New.Raw), "keep_until", r.KeepUntil, "kms", keys.KMS)
	return r, nil
}

// keepRoots drops the previous roots whose overlap has ended, and the
// previous intermediates under them, recording each retirement.
func keepRoots(roots []castate.PreviousRoot, prev []castate.PreviousState, now time.Time, steps []Step) ([]castate.PreviousRoot, []castate.PreviousState, []Step) {
	var kept []castate.PreviousRoot
	gone := map[string]bool{}
	for _, r := range roots {
		if now.After(r.KeepUntil) {
			gone[string(r.Root)] = true
			steps = append(steps, Step{Action: "ca.retire", Resource: "ca/root/" + castate.SerialOf(r.Root), Detail: "overlap ended " + r.KeepUntil.UTC().Format(time.RFC3339)})
			continue
		}
		kept = append(kept, r)
	}
	var keptPrev []castate.PreviousState
	for _, p := range prev {
		if p.Root != nil && gone[string(p.Root)] {
			continue
		}
		keptPrev = append(keptPrev, p)
	}
	return kept, keptPrev, steps
}

func isP384(pub crypto.PublicKey) bool {
	k, ok := pub.(*ecdsa.PublicKey)
	return ok && k.Curve == elliptic.P384()
}

// nextSubject names the intermediate of generation gen after cur.
func nextSubject(cur *x509.Certificate, gen int) pkix.Name {
	return pkix.Name{Organization: cur.Subject.Organization, CommonName: fmt.Sprintf("%s Intermediate CA %d", orgOf(cur), gen+1)}
}

// PrepareRotation makes the next intermediate's key (in cfg.KMS when set,
// else sealed in the state) and returns its CSR, for an offline root to sign
// (zdps ca sign-intermediate); Rotate with the certificate installs it. A
// second call replaces the pending key.
func PrepareRotation(ctx context.Context, cfg ca.Config) ([]byte, error) {
	start, err := loadForRotation(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	cfg, sw, z, blob, s, l := start.cfg, start.sw, start.z, start.Blob, start.s, start.l
	kt := ca.KeyECP256
	if isP384(l.Inter.PublicKey) {
		kt = ca.KeyECP384
	}
	p := &castate.PendingState{}
	var key crypto.Signer
	if cfg.KMS != nil {
		var ref string
		p.KMS = cfg.KMS.Type()
		if ref, key, err = cfg.KMS.CreateKey(ctx, kt, "zdps-ca-intermediate"); err != nil {
			return nil, fmt.Errorf("ca: create intermediate key in %s KMS: %w", p.KMS, err)
		}
		csr, err := x509.CreateCertificateRequest(cfg.Rand, &x509.CertificateRequest{Subject: nextSubject(l.Inter, l.Generation+1)}, key)
		if err != nil {
			return nil, fmt.Errorf("ca: CSR: %w", err)
		}
		p.CSR = csr
		if p.KeyRef, err = z.SealAD(castate.ADFor(castate.RolePendingRef, l.Root.Raw, csr), []byte(ref)); err != nil {
			return nil, err
		}
	} else {
		if key, err = keyutil.GenerateSigner("EC", kt.Curve(), 0); err != nil {
			return nil, err
		}
		csr, err := x509.CreateCertificateRequest(cfg.Rand, &x509.CertificateRequest{Subject: nextSubject(l.Inter, l.Generation+1)}, key)
		if err != nil {
			return nil, fmt.Errorf("ca: CSR: %w", err)
		}
		p.CSR = csr
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		p.Key, err = z.SealAD(castate.ADFor(castate.RolePending, l.Root.Raw, csr), der)
		clear(der)
		if err != nil {
			return nil, err
		}
	}
	s.Pending = p
	next, err := json.Marshal(&s)
	if err != nil {
		return nil, err
	}
	if err := sw.Swap(ctx, blob, next, func(store.Tx) error { return nil }); err != nil {
		return nil, err
	}
	return p.CSR, nil
}

func orgOf(c *x509.Certificate) string {
	if len(c.Subject.Organization) > 0 {
		return c.Subject.Organization[0]
	}
	return ca.DefaultOrganization
}

// rotationStart is where every rotation starts: cfg with its defaults,
// the storage's Swapper, the sealer, and the stored state (its blob,
// parsed and decoded).
type rotationStart struct {
	cfg  ca.Config
	sw   ca.Swapper
	z    *castate.Sealer
	Blob []byte
	s    castate.State
	l    *castate.Loaded
}

// loadForRotation loads a rotationStart. A delegated CA (an edge
// gateway's) never rotates. keysHere requires the KMS of the current
// intermediate's key, which the rotation signs with or retires.
func loadForRotation(ctx context.Context, cfg ca.Config, keysHere bool) (*rotationStart, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	r := &rotationStart{cfg: cfg}
	var ok bool
	if r.sw, ok = cfg.Storage.(ca.Swapper); !ok {
		return nil, fmt.Errorf("%w: the storage cannot swap states", ca.ErrInvalidConfig)
	}
	if r.z, err = castate.NewSealer(cfg.KEK, cfg.Rand); err != nil {
		return nil, err
	}
	if r.Blob, err = cfg.Storage.Load(ctx); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(r.Blob, &r.s); err != nil {
		return nil, fmt.Errorf("%w: %w", ca.ErrCorruptState, err)
	}
	if keysHere && r.s.KMS != "" && (cfg.KMS == nil || cfg.KMS.Type() != r.s.KMS) {
		return nil, fmt.Errorf("%w: the current intermediate key is in a %s KMS: give it (--kms) to rotate", ca.ErrKMSRequired, r.s.KMS)
	}
	if r.l, err = castate.Decode(ctx, r.z, r.Blob, cfg.KMS); err != nil {
		return nil, err
	}
	if r.l.Delegated {
		return nil, ca.ErrDelegated
	}
	return r, nil
}

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
func RotateRoot(ctx context.Context, cfg ca.Config, o RotateOptions) (*RootRotation, error) {
	start, err := loadForRotation(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	cfg, sw, z, blob, s, l := start.cfg, start.sw, start.z, start.Blob, start.s, start.l
	if s.RootKey == nil {
		return nil, fmt.Errorf("%w: the root key is offline: a root rotation needs it to cross-sign the new root", ca.ErrInvalidCA)
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
	keepUntil := castate.MinTime(now.Add(overlap), l.Root.NotAfter)
	r := &RootRotation{OldRoot: l.Root}
	r.Old, r.KeepUntil, r.Generation = l.Inter, keepUntil, l.Generation+1

	kt := ca.KeyECP256
	if isP384(l.Root.PublicKey) {
		kt = ca.KeyECP384
	}
	newKey, err := keyutil.GenerateSigner("EC", kt.Curve(), 0)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	org := orgOf(l.Root)
	serial, err := castate.RandomSerial(cfg.Rand)
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
			if keys.TLSRef, _, err = cfg.KMS.CreateKey(ctx, ca.KeyECP256, "zdps-tls"); err != nil {
				return nil, fmt.Errorf("ca: create TLS key in %s KMS: %w", keys.KMS, err)
			}
		}
	} else if interKey, err = keyutil.GenerateSigner("EC", kt.Curve(), 0); err != nil {
		return nil, fmt.Errorf("ca: generate intermediate key: %w", err)
	}
	keys.Inter = interKey
	interSerial, err := castate.RandomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	itmpl := castate.IntermediateTemplate(interSerial, nextSubject(l.Inter, r.Generation), now.Add(-time.Minute), castate.MinTime(now.Add(cfg.IntermediateValidity), r.NewRoot.NotAfter))
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
			r.Steps = append(r.Steps, Step{Action: "ca.retire", Resource: "ca/intermediate/" + castate.SerialOf(p.Intermediate), Detail: "overlap ended " + p.KeepUntil.UTC().Format(time.RFC3339)})
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
	r.Steps = append(r.Steps, Step{Action: "ca.rotate-root", Resource: "ca/root/" + castate.SerialOf(r.NewRoot.Raw),
		Detail: fmt.Sprintf("generation %d, cross-signed by %s, which is trusted until %s; intermediate %s", r.Generation, castate.SerialOf(l.Root.Raw), keepUntil.UTC().Format(time.RFC3339), castate.SerialOf(r.New.Raw))})
	if err := sw.Swap(ctx, blob, newBlob, func(tx store.Tx) error {
		if o.Audit == nil {
			return nil
		}
		return o.Audit(ctx, tx, r.Steps)
	}); err != nil {
		return nil, err
	}
	cfg.Logger.Info("ca root rotated", "generation", r.Generation, "new_root_serial", castate.SerialOf(r.NewRoot.Raw), "keep_until", keepUntil)
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

// crossSign issues inter again under root (same subject, key and key ID),
// no longer valid than either: leaves of inter then chain to root with one
// intermediate, within a zdps root's path length.
func crossSign(cfg ca.Config, inter, root *x509.Certificate, rootKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := castate.RandomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	tmpl := castate.IntermediateTemplate(serial, inter.Subject, inter.NotBefore, castate.MinTime(inter.NotAfter, root.NotAfter))
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
			return nil, nil, fmt.Errorf("%w: %w", ca.ErrCorruptState, err)
		}
		der, err := z.OpenAD(castate.RolePrevRootKey, castate.ADFor(castate.RolePrevRootKey, root.Raw, root.Raw), roots[i].Key)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s does not open", ca.ErrCorruptState, castate.RolePrevRootKey)
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		clear(der)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ca.ErrCorruptState, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok || keyutil.VerifyPair(root.PublicKey, signer) != nil {
			return nil, nil, fmt.Errorf("%w: previous root key does not match its root", ca.ErrCorruptState)
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
