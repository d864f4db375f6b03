package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.step.sm/crypto/keyutil"

	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/store"
)

// Swapper is the part of a Storage that rotation needs: replace the state
// only if it is still old, atomically, running also in the same
// transaction (the audit events of the change). BackendStorage has it.
type Swapper interface {
	Swap(ctx context.Context, old, new []byte, also func(store.Tx) error) error
}

// ErrStateChanged: the state changed under a rotation (another rotation
// won); nothing was written.
var ErrStateChanged = errors.New("ca: the stored state changed during the rotation; run it again")

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
func Rotate(ctx context.Context, cfg Config, o RotateOptions) (*Rotation, error) {
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
		return nil, fmt.Errorf("%w: the root key is offline: make the next key and its CSR (zdps ca rotate --csr-out), sign it with zdps ca sign-intermediate, then install it (zdps ca rotate --intermediate-cert)", ErrInvalidCA)
	}
	now := cfg.Now()
	overlap := o.Overlap
	if overlap <= 0 {
		overlap = cfg.DefaultLeafValidity
	}
	r := &Rotation{Old: l.Inter, KeepUntil: minTime(now.Add(overlap), l.Inter.NotAfter), Generation: l.Generation + 1}

	// History: drop what has served its overlap, then add the outgoing one.
	var prev []castate.PreviousState
	for _, p := range l.PrevState {
		if now.After(p.KeepUntil) {
			r.Steps = append(r.Steps, Step{Action: "ca.retire", Resource: "ca/intermediate/" + serialOf(p.Intermediate), Detail: "overlap ended " + p.KeepUntil.UTC().Format(time.RFC3339)})
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
	kt := KeyECP256
	if isP384(l.Inter.PublicKey) {
		kt = KeyECP384
	}
	var interKey crypto.Signer
	switch {
	case rootKey == nil:
		// Offline root: the key PrepareRotation made, the certificate the
		// operator brought.
		if s.Pending == nil {
			return nil, fmt.Errorf("%w: no next key is pending: run zdps ca rotate --csr-out first", ErrInvalidCA)
		}
		var ref string
		if interKey, ref, err = castate.OpenPending(ctx, z, l.Root, s.Pending, cfg.KMS); err != nil {
			return nil, err
		}
		if err := castate.CheckChain(l.Root, o.Intermediate); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
		}
		if err := keyutil.VerifyPair(o.Intermediate.PublicKey, interKey); err != nil {
			return nil, fmt.Errorf("%w: the certificate is not for the pending key (its CSR)", ErrInvalidCA)
		}
		if now.Before(o.Intermediate.NotBefore) || !now.Before(o.Intermediate.NotAfter) {
			return nil, fmt.Errorf("%w: the certificate is not valid now", ErrInvalidCA)
		}
		keys.KMS, keys.InterRef, r.New = s.Pending.KMS, ref, o.Intermediate
		if keys.KMS != "" {
			if keys.TLSRef = l.TLSRef; keys.TLSRef == "" || l.KMS != keys.KMS {
				if keys.TLSRef, _, err = cfg.KMS.CreateKey(ctx, KeyECP256, "zdps-tls"); err != nil {
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
			if keys.TLSRef, _, err = cfg.KMS.CreateKey(ctx, KeyECP256, "zdps-tls"); err != nil {
				return nil, fmt.Errorf("ca: create TLS key in %s KMS: %w", keys.KMS, err)
			}
		}
	default:
		if interKey, err = keyutil.GenerateSigner("EC", curveOf(kt), 0); err != nil {
			return nil, fmt.Errorf("ca: generate intermediate key: %w", err)
		}
	}
	keys.Inter = interKey
	if r.New == nil {
		serial, err := randomSerial(cfg.Rand)
		if err != nil {
			return nil, err
		}
		subj := nextSubject(l.Inter, r.Generation)
		tmpl := intermediateTemplate(serial, subj, now.Add(-time.Minute), minTime(now.Add(cfg.IntermediateValidity), l.Root.NotAfter))
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
	r.Steps = append(r.Steps, Step{Action: "ca.rotate", Resource: "ca/intermediate/" + serialOf(r.New.Raw),
		Detail: fmt.Sprintf("generation %d, key %s; previous %s kept until %s", r.Generation, where, serialOf(l.Inter.Raw), r.KeepUntil.UTC().Format(time.RFC3339))})
	also := func(tx store.Tx) error {
		if o.Audit == nil {
			return nil
		}
		return o.Audit(ctx, tx, r.Steps)
	}
	if err := sw.Swap(ctx, blob, newBlob, also); err != nil {
		return nil, err
	}
	cfg.Logger.Info("ca rotated", "generation", r.Generation, "old_serial", serialOf(l.Inter.Raw), "new_serial", serialOf(r.New.Raw), "keep_until", r.KeepUntil, "kms", keys.KMS)
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
			steps = append(steps, Step{Action: "ca.retire", Resource: "ca/root/" + serialOf(r.Root), Detail: "overlap ended " + r.KeepUntil.UTC().Format(time.RFC3339)})
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
func PrepareRotation(ctx context.Context, cfg Config) ([]byte, error) {
	start, err := loadForRotation(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	cfg, sw, z, blob, s, l := start.cfg, start.sw, start.z, start.Blob, start.s, start.l
	kt := KeyECP256
	if isP384(l.Inter.PublicKey) {
		kt = KeyECP384
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
		if key, err = keyutil.GenerateSigner("EC", curveOf(kt), 0); err != nil {
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
	return DefaultOrganization
}

// serialOf is the serial of a DER certificate in zdps's hex form.
func serialOf(der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%032x", c.SerialNumber)
}

// Reload loads the stored state and, when it changed (a rotation), switches
// the CA to it. Certificates being signed finish with the generation they
// started with.
func (c *CA) Reload(ctx context.Context) (bool, error) {
	blob, err := c.cfg.Storage.Load(ctx)
	if err != nil {
		return false, err
	}
	cur := c.cur.Load()
	if bytes.Equal(blob, cur.Blob) {
		return false, nil
	}
	z, err := castate.NewSealer(c.cfg.KEK, c.cfg.Rand)
	if err != nil {
		return false, err
	}
	l, err := castate.Decode(ctx, z, blob, c.cfg.KMS)
	if err != nil {
		return false, err
	}
	if !l.Root.Equal(cur.Root) && !l.TrustsOldRoot(cur.Root) {
		return false, fmt.Errorf("%w: the stored root changed without a root rotation; restart to take a new root", ErrCorruptState)
	}
	c.cur.Store(newGen(l))
	c.log.Info("ca reloaded", "generation", l.Generation, "intermediate_serial", serialOf(l.Inter.Raw), "previous", len(l.Previous))
	return true, nil
}

// Watch reloads the CA every interval until ctx ends, calling changed after
// each switch (to rewrite the bundle file). Errors are logged and retried:
// the CA keeps signing with what it has.
func (c *CA) Watch(ctx context.Context, interval time.Duration, changed func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := c.Reload(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("ca reload failed", "err", err)
			}
			continue
		}
		if ok && changed != nil {
			changed()
		}
	}
}

// Generation is the number of rotations of the loaded state.
func (c *CA) Generation() int { return c.cur.Load().Generation }

// Previous returns the rotated-out intermediates still in the bundle, oldest
// first, and when each leaves it.
func (c *CA) Previous() []PreviousIntermediate {
	g := c.cur.Load()
	out := make([]PreviousIntermediate, 0, len(g.Previous))
	for _, p := range g.Previous {
		out = append(out, PreviousIntermediate{Certificate: p.Inter, RotatedAt: p.RotatedAt, KeepUntil: p.KeepUntil, CanSignCRL: p.Signer != nil})
	}
	return out
}

// Intermediates is the issuing intermediate then the rotated-out ones still
// in their overlap: what issued a certificate a device may present.
func (c *CA) Intermediates() []*x509.Certificate {
	g := c.cur.Load()
	out := []*x509.Certificate{g.Inter}
	// A delegated CA's leaves chain through central's intermediate too.
	out = append(out, g.Above...)
	for _, p := range g.Previous {
		out = append(out, p.Inter)
	}
	return out
}

// PreviousIntermediate is a rotated-out intermediate during its overlap.
type PreviousIntermediate struct {
	Certificate *x509.Certificate
	RotatedAt   time.Time
	KeepUntil   time.Time
	// CanSignCRL: its key opened here (sealed, or in the KMS given).
	CanSignCRL bool
}

// rotationStart is where every rotation starts: cfg with its defaults,
// the storage's Swapper, the sealer, and the stored state (its blob,
// parsed and decoded).
type rotationStart struct {
	cfg  Config
	sw   Swapper
	z    *castate.Sealer
	Blob []byte
	s    castate.State
	l    *castate.Loaded
}

// loadForRotation loads a rotationStart. A delegated CA (an edge
// gateway's) never rotates. keysHere requires the KMS of the current
// intermediate's key, which the rotation signs with or retires.
func loadForRotation(ctx context.Context, cfg Config, keysHere bool) (*rotationStart, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &rotationStart{cfg: cfg}
	var ok bool
	if r.sw, ok = cfg.Storage.(Swapper); !ok {
		return nil, fmt.Errorf("%w: the storage cannot swap states", ErrInvalidConfig)
	}
	if r.z, err = castate.NewSealer(cfg.KEK, cfg.Rand); err != nil {
		return nil, err
	}
	if r.Blob, err = cfg.Storage.Load(ctx); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(r.Blob, &r.s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if keysHere && r.s.KMS != "" && (cfg.KMS == nil || cfg.KMS.Type() != r.s.KMS) {
		return nil, fmt.Errorf("%w: the current intermediate key is in a %s KMS: give it (--kms) to rotate", ErrKMSRequired, r.s.KMS)
	}
	if r.l, err = castate.Decode(ctx, r.z, r.Blob, cfg.KMS); err != nil {
		return nil, err
	}
	if r.l.Delegated {
		return nil, ErrDelegated
	}
	return r, nil
}
