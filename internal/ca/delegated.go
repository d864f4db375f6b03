package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/store"
)

// Delegated CAs: the issuing CA of an edge gateway. The gateway holds the
// key of a CA certificate central signed for it (SignSiteCA); the chain
// above it (central's intermediate, central's root) is public and stored
// with it. Such a state has no root key and cannot rotate: the gateway
// renews it by asking central again (StoreDelegated with the new chain).

// stateVersionDelegated marks a delegated state: the intermediate is the
// gateway's CA and Above holds central's intermediates. A binary that
// does not know it refuses it instead of issuing without the chain.
const stateVersionDelegated = 3

const roleAbove = "above-chain"

// ErrDelegated: the operation needs a CA of its own (rotation, issuing a
// site CA), and this one is a gateway's delegated CA.
var ErrDelegated = errors.New("ca: this is an edge gateway's delegated CA: renew it at central instead")

// ErrDelegatedChain: a chain given to StoreDelegated is unusable.
var ErrDelegatedChain = errors.New("ca: invalid delegated CA chain")

// aboveDigest is what the roleAbove seal binds: every certificate above
// the intermediate, in order.
func aboveDigest(s *state) []byte {
	h := sha256.New()
	for _, c := range s.Above {
		d := sha256.Sum256(c)
		h.Write(d[:])
	}
	return h.Sum(nil)
}

// NewDelegatedKey makes the key of a gateway's next delegated CA: in
// cfg.KMS when there is one (a TPM through tpmkms, an HSM), its reference
// returned for StoreDelegated; otherwise a software P-256 key and ref "".
func NewDelegatedKey(ctx context.Context, cfg Config, label string) (key crypto.Signer, ref string, err error) {
	if cfg.KMS != nil {
		ref, key, err = cfg.KMS.CreateKey(ctx, KeyECP256, label)
		if err != nil {
			return nil, "", fmt.Errorf("ca: delegated CA key in %s KMS: %w", cfg.KMS.Type(), err)
		}
		return key, ref, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	return k, "", nil
}

// StoreDelegated stores a delegated CA: chain is the gateway's CA
// certificate, then central's intermediate(s), then central's root (as
// POST /gateway/v1/ca answers); key is the CA certificate's private key,
// sealed under cfg.KEK, or, when ref is not "", a key of cfg.KMS
// (NewDelegatedKey) whose reference is sealed instead. It creates the state on first start and replaces
// a delegated state under the same root afterwards (renewal; a running CA
// follows through Reload/Watch). It never replaces a CA of zdps's own.
func StoreDelegated(ctx context.Context, cfg Config, chain []*x509.Certificate, key crypto.Signer, ref string) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if len(chain) < 2 {
		return fmt.Errorf("%w: want the delegated CA, central's intermediates and its root", ErrDelegatedChain)
	}
	inter, above, root := chain[0], chain[1:len(chain)-1], chain[len(chain)-1]
	if err := checkDelegated(root, above, inter); err != nil {
		return fmt.Errorf("%w: %w", ErrDelegatedChain, err)
	}
	if !publicKeysEqual(key.Public(), inter.PublicKey) {
		return fmt.Errorf("%w: the key is not the delegated CA's", ErrDelegatedChain)
	}
	z, err := newSealer(cfg.KEK, cfg.Rand)
	if err != nil {
		return err
	}
	s := &state{Version: stateVersionDelegated, CreatedAt: cfg.Now().UTC(), Root: root.Raw, Intermediate: inter.Raw}
	for _, a := range above {
		s.Above = append(s.Above, a.Raw)
	}
	if s.KEKCheck, err = z.seal(roleCheck, s, nil); err != nil {
		return err
	}
	if s.AboveSeal, err = z.seal(roleAbove, s, aboveDigest(s)); err != nil {
		return err
	}
	if ref != "" {
		if cfg.KMS == nil {
			return fmt.Errorf("%w: a KMS key reference without a KMS", ErrInvalidConfig)
		}
		s.KMS = cfg.KMS.Type()
		if s.IntermediateKeyRef, err = z.seal(roleInterRef, s, []byte(ref)); err != nil {
			return err
		}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("ca: marshal delegated key: %w", err)
		}
		if s.IntermediateKey, err = z.seal(roleIntermediate, s, der); err != nil {
			return err
		}
	}
	blob, err := json.Marshal(s)
	if err != nil {
		return err
	}
	old, err := cfg.Storage.Load(ctx)
	switch {
	case errors.Is(err, ErrNoState):
		return cfg.Storage.Create(ctx, blob)
	case err != nil:
		return err
	}
	l, err := decodeState(ctx, z, old, cfg.KMS)
	if err != nil {
		return err
	}
	if !l.delegated {
		return fmt.Errorf("%w: the store holds a CA of its own; a gateway needs a store of its own", ErrDelegatedChain)
	}
	if !l.root.Equal(root) {
		return fmt.Errorf("%w: central's root changed; restart the gateway with the new --upstream-ca-file", ErrDelegatedChain)
	}
	sw, ok := cfg.Storage.(Swapper)
	if !ok {
		return fmt.Errorf("%w: the storage cannot replace a state", ErrInvalidConfig)
	}
	return sw.Swap(ctx, old, blob, func(store.Tx) error { return nil })
}

// checkDelegated checks a delegated chain: root self-signed, each
// certificate above signed by the next, the delegated CA by the first.
func checkDelegated(root *x509.Certificate, above []*x509.Certificate, inter *x509.Certificate) error {
	if len(above) == 0 {
		return errors.New("central's intermediate is missing")
	}
	// The root and the intermediate below it as any CA state has them.
	if err := checkChain(root, above[len(above)-1]); err != nil {
		return fmt.Errorf("central's chain: %w", err)
	}
	issuer := above[len(above)-1]
	for i := len(above) - 2; i >= 0; i-- {
		if err := above[i].CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("central intermediate %d: %w", i, err)
		}
		issuer = above[i]
	}
	if !inter.BasicConstraintsValid || !inter.IsCA {
		return errors.New("the delegated certificate is not a CA certificate")
	}
	if inter.KeyUsage&x509.KeyUsageCertSign == 0 || inter.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return errors.New("the delegated CA lacks the keyCertSign or cRLSign key usage")
	}
	if err := inter.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("the delegated CA is not signed by central's intermediate: %w", err)
	}
	return nil
}

// decodeDelegated opens the parts of a delegated state beyond the
// common ones: the chain above (bound to the KEK) and the key.
func decodeDelegated(ctx context.Context, z *sealer, s *state, keys KeyStore, l *loaded) error {
	if s.Version != stateVersionDelegated {
		return nil
	}
	got, err := z.open(roleAbove, s, s.AboveSeal)
	if err != nil || !bytes.Equal(got, aboveDigest(s)) {
		return fmt.Errorf("%w: the delegated chain is not the one sealed", ErrCorruptState)
	}
	for i, der := range s.Above {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: central intermediate %d: %w", ErrCorruptState, i, err)
		}
		l.above = append(l.above, c)
	}
	if err := checkDelegated(l.root, l.above, l.inter); err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	l.delegated = true
	l.site, _ = SiteOf(l.inter)
	if s.IntermediateKeyRef != nil {
		return openKMSKeys(ctx, z, s, keys, l)
	}
	if l.signer, err = openKey(z, roleIntermediate, s, s.IntermediateKey, l.inter); err != nil {
		return err
	}
	return nil
}

// Delegated reports whether this CA is an edge gateway's delegated CA,
// and for which site.
func (c *CA) Delegated() (site string, ok bool) {
	g := c.cur.Load()
	return g.site, g.delegated
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
