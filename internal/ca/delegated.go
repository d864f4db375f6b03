package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/store"
)

// Delegated CAs: the issuing CA of an edge gateway. The gateway holds the
// key of a CA certificate central signed for it (SignSiteCA); the chain
// above it (central's intermediate, central's root) is public and stored
// with it. Such a state has no root key and cannot rotate: the gateway
// renews it by asking central again (StoreDelegated with the new chain).

// ErrDelegated: the operation needs a CA of its own (rotation, issuing a
// site CA), and this one is a gateway's delegated CA.
var ErrDelegated = errors.New("ca: this is an edge gateway's delegated CA: renew it at central instead")

// ErrDelegatedChain: a chain given to StoreDelegated is unusable.
var ErrDelegatedChain = errors.New("ca: invalid delegated CA chain")

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
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return err
	}
	if len(chain) < 2 {
		return fmt.Errorf("%w: want the delegated CA, central's intermediates and its root", ErrDelegatedChain)
	}
	inter, above, root := chain[0], chain[1:len(chain)-1], chain[len(chain)-1]
	if err := castate.CheckDelegated(root, above, inter); err != nil {
		return fmt.Errorf("%w: %w", ErrDelegatedChain, err)
	}
	if !publicKeysEqual(key.Public(), inter.PublicKey) {
		return fmt.Errorf("%w: the key is not the delegated CA's", ErrDelegatedChain)
	}
	z, err := castate.NewSealer(cfg.KEK, cfg.Rand)
	if err != nil {
		return err
	}
	s := &castate.State{Version: castate.VersionDelegated, CreatedAt: cfg.Now().UTC(), Root: root.Raw, Intermediate: inter.Raw}
	for _, a := range above {
		s.Above = append(s.Above, a.Raw)
	}
	if s.KEKCheck, err = z.Seal(castate.RoleCheck, s, nil); err != nil {
		return err
	}
	if s.AboveSeal, err = z.Seal(castate.RoleAbove, s, castate.AboveDigest(s)); err != nil {
		return err
	}
	if ref != "" {
		if cfg.KMS == nil {
			return fmt.Errorf("%w: a KMS key reference without a KMS", ErrInvalidConfig)
		}
		s.KMS = cfg.KMS.Type()
		if s.IntermediateKeyRef, err = z.Seal(castate.RoleInterRef, s, []byte(ref)); err != nil {
			return err
		}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("ca: marshal delegated key: %w", err)
		}
		if s.IntermediateKey, err = z.Seal(castate.RoleIntermediate, s, der); err != nil {
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
	l, err := castate.Decode(ctx, z, old, cfg.KMS)
	if err != nil {
		return err
	}
	if !l.Delegated {
		return fmt.Errorf("%w: the store holds a CA of its own; a gateway needs a store of its own", ErrDelegatedChain)
	}
	if !l.Root.Equal(root) {
		return fmt.Errorf("%w: central's root changed; restart the gateway with the new --upstream-ca-file", ErrDelegatedChain)
	}
	sw, ok := cfg.Storage.(Swapper)
	if !ok {
		return fmt.Errorf("%w: the storage cannot replace a state", ErrInvalidConfig)
	}
	return sw.Swap(ctx, old, blob, func(store.Tx) error { return nil })
}

// Delegated reports whether this CA is an edge gateway's delegated CA,
// and for which site.
func (c *CA) Delegated() (site string, ok bool) {
	g := c.cur.Load()
	return g.Site, g.Delegated
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
